package detect

// deleteIndex finds, in time independent of how many domains it holds, every
// indexed domain within one edit (omission, insertion, substitution,
// transposition) of a query: the symmetric-delete neighbourhood. Each domain
// is stored under the hash of itself and of each one-character deletion of
// it; a query looks up the same keys. Hash collisions and two-edit matches
// are filtered by the caller's exact edit check.
type deleteIndex struct {
	// m maps a key hash to a target id (>= 0) or to -(1+i) for overflow[i].
	m        map[uint64]int32
	overflow [][]int32
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// hashSkip is FNV-1a over s without the byte at skip (skip < 0: whole s).
func hashSkip(s string, skip int) uint64 {
	h := uint64(fnvOffset)
	for i := 0; i < len(s); i++ {
		if i == skip {
			continue
		}
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

func newDeleteIndex(n int) *deleteIndex {
	return &deleteIndex{m: make(map[uint64]int32, n*12)}
}

func (x *deleteIndex) add(s string, id int32) {
	x.put(hashSkip(s, -1), id)
	for i := 0; i < len(s); i++ {
		if i > 0 && s[i] == s[i-1] {
			continue // same deletion as the previous position
		}
		x.put(hashSkip(s, i), id)
	}
}

func (x *deleteIndex) put(h uint64, id int32) {
	v, ok := x.m[h]
	switch {
	case !ok:
		x.m[h] = id
	case v >= 0:
		if v != id {
			x.overflow = append(x.overflow, []int32{v, id})
			x.m[h] = -int32(len(x.overflow))
		}
	default:
		l := x.overflow[-v-1]
		if l[len(l)-1] != id {
			x.overflow[-v-1] = append(l, id)
		}
	}
}

// lookup appends to dst the ids of every domain that may be one edit from s.
// The result can hold duplicates and false candidates.
func (x *deleteIndex) lookup(s string, dst []int32) []int32 {
	dst = x.get(hashSkip(s, -1), dst)
	for i := 0; i < len(s); i++ {
		if i > 0 && s[i] == s[i-1] {
			continue
		}
		dst = x.get(hashSkip(s, i), dst)
	}
	return dst
}

func (x *deleteIndex) get(h uint64, dst []int32) []int32 {
	v, ok := x.m[h]
	if !ok {
		return dst
	}
	if v >= 0 {
		return append(dst, v)
	}
	return append(dst, x.overflow[-v-1]...)
}
