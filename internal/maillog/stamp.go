package maillog

import (
	"time"
)

// Stamp is a log line's timestamp as written. Classic syslog lines carry no
// year (Year 0) and no zone: the year is inferred and the zone is
// Options.Location. A zone-less stamp with a year (syslog-ng's
// "2024-01-02 10:00:00") is in Options.Location too.
type Stamp struct {
	Year                 int // 0 when the log has none
	Month, Day           int
	Hour, Minute, Second int
	Nanosecond           int
	HasZone              bool
	Offset               int // seconds east of UTC, when HasZone
}

var monthIndex = func() map[[3]byte]int {
	m := map[[3]byte]int{}
	for i, n := range []string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"} {
		m[[3]byte{n[0], n[1], n[2]}] = i + 1
	}
	return m
}()

func monthOf(b string) int {
	if len(b) < 3 {
		return 0
	}
	// Fast path without a map: the three letters, case as syslog writes them.
	switch string(b[:3]) {
	case "Jan":
		return 1
	case "Feb":
		return 2
	case "Mar":
		return 3
	case "Apr":
		return 4
	case "May":
		return 5
	case "Jun":
		return 6
	case "Jul":
		return 7
	case "Aug":
		return 8
	case "Sep":
		return 9
	case "Oct":
		return 10
	case "Nov":
		return 11
	case "Dec":
		return 12
	}
	return monthIndex[[3]byte{b[0], b[1], b[2]}]
}

func digits(b string, n int) (int, bool) {
	if len(b) < n {
		return 0, false
	}
	v := 0
	for i := 0; i < n; i++ {
		c := b[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}

// parseClock parses "hh:mm:ss[.frac]" at the start of b.
func parseClock(b string, st *Stamp) (int, bool) {
	if len(b) < 8 || b[2] != ':' || b[5] != ':' {
		return 0, false
	}
	h, ok1 := digits(b, 2)
	m, ok2 := digits(b[3:], 2)
	s, ok3 := digits(b[6:], 2)
	if !ok1 || !ok2 || !ok3 || h > 23 || m > 59 || s > 60 {
		return 0, false
	}
	if s == 60 { // a leap second: keep the order, lose the second
		s = 59
	}
	st.Hour, st.Minute, st.Second = h, m, s
	i := 8
	if i < len(b) && (b[i] == '.' || b[i] == ',') {
		i++
		ns, scale := 0, 100000000
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			ns += int(b[i]-'0') * scale
			scale /= 10
			i++
		}
		if i == start {
			return 0, false
		}
		st.Nanosecond = ns
	}
	return i, true
}

// parseZone parses "Z", "+hh:mm", "+hhmm" or "+hh" at the start of b.
func parseZone(b string, st *Stamp) (int, bool) {
	if len(b) == 0 {
		return 0, false
	}
	if b[0] == 'Z' || b[0] == 'z' {
		st.HasZone, st.Offset = true, 0
		return 1, true
	}
	if b[0] != '+' && b[0] != '-' {
		return 0, false
	}
	h, ok := digits(b[1:], 2)
	if !ok || h > 23 {
		return 0, false
	}
	n, m := 3, 0
	switch {
	case len(b) >= 6 && b[3] == ':':
		if m, ok = digits(b[4:], 2); !ok {
			return 0, false
		}
		n = 6
	case len(b) >= 5 && b[3] >= '0' && b[3] <= '9':
		if m, ok = digits(b[3:], 2); !ok {
			return 0, false
		}
		n = 5
	}
	if m > 59 {
		return 0, false
	}
	off := h*3600 + m*60
	if b[0] == '-' {
		off = -off
	}
	st.HasZone, st.Offset = true, off
	return n, true
}

var daysIn = [13]int{0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}

func validDate(y, m, d int) bool {
	if m < 1 || m > 12 || d < 1 || d > daysIn[m] {
		return false
	}
	if m == 2 && d == 29 && y != 0 && !(y%4 == 0 && (y%100 != 0 || y%400 == 0)) {
		return false
	}
	return true
}

// parseStamp parses the timestamp at the start of a log line and returns
// the offset just past it and the space that follows. It accepts
//
//	Jan  2 15:04:05            classic syslog, Postfix's maillog_file
//	Jan  2 15:04:05.000123     journalctl -o short-precise
//	Jan  2 2006 15:04:05       syslog with a year
//	2006 Jan  2 15:04:05       syslog-ng's $YEAR prefix
//	2006-01-02T15:04:05[.frac][Z|±hh:mm|±hhmm]   RFC 3339 (rsyslog, journalctl -o short-iso)
//	2006-01-02 15:04:05[.frac][ ±hhmm]           syslog-ng ISO, Exim
func parseStamp(b string) (Stamp, int, bool) {
	var st Stamp
	if len(b) < 15 {
		return st, 0, false
	}
	i := 0
	if b[0] >= '0' && b[0] <= '9' {
		y, ok := digits(b, 4)
		if !ok || y == 0 || len(b) < 5 {
			return st, 0, false
		}
		st.Year = y
		if b[4] == '-' {
			// ISO date.
			if len(b) < 19 || b[7] != '-' || (b[10] != 'T' && b[10] != ' ') {
				return st, 0, false
			}
			m, ok1 := digits(b[5:], 2)
			d, ok2 := digits(b[8:], 2)
			if !ok1 || !ok2 || !validDate(y, m, d) {
				return st, 0, false
			}
			st.Month, st.Day = m, d
			n, ok := parseClock(b[11:], &st)
			if !ok {
				return st, 0, false
			}
			i = 11 + n
			if i < len(b) && b[i] != ' ' {
				z, ok := parseZone(b[i:], &st)
				if !ok {
					return st, 0, false
				}
				i += z
			} else if i+6 < len(b) && (b[i+1] == '+' || b[i+1] == '-') && b[i+6] == ' ' {
				// "2006-01-02 15:04:05 +0100 " (Exim's log_timezone).
				if z, ok := parseZone(b[i+1:i+6], &st); ok && z == 5 {
					i += 6
				}
			}
			if i >= len(b) || b[i] != ' ' {
				return st, 0, false
			}
			return st, i + 1, true
		}
		// "2006 Jan  2 15:04:05"
		if b[4] != ' ' {
			return st, 0, false
		}
		i = 5
	}
	m := monthOf(b[i:])
	if m == 0 || len(b) < i+15 || b[i+3] != ' ' {
		return st, 0, false
	}
	st.Month = m
	i += 4
	var d int
	switch {
	case b[i] == ' ' && b[i+1] >= '1' && b[i+1] <= '9':
		d = int(b[i+1] - '0')
	case b[i] >= '0' && b[i] <= '3' && b[i+1] >= '0' && b[i+1] <= '9':
		d = int(b[i]-'0')*10 + int(b[i+1]-'0')
	case b[i] >= '1' && b[i] <= '9' && b[i+1] == ' ':
		// "Jan 2 15:04:05": unpadded day.
		d = int(b[i] - '0')
		i--
	default:
		return st, 0, false
	}
	i += 2
	if i >= len(b) || b[i] != ' ' {
		return st, 0, false
	}
	i++
	if st.Year == 0 && len(b) >= i+5 && b[i+4] == ' ' {
		// "Jan  2 2006 15:04:05"
		y, ok := digits(b[i:], 4)
		if !ok || y == 0 {
			return st, 0, false
		}
		st.Year = y
		i += 5
	}
	if !validDate(st.Year, m, d) {
		return st, 0, false
	}
	st.Day = d
	n, ok := parseClock(b[i:], &st)
	if !ok {
		return st, 0, false
	}
	i += n
	if i >= len(b) || b[i] != ' ' {
		return st, 0, false
	}
	return st, i + 1, true
}

// clock turns stamps into times. Stamps without a year get one: the first
// of an input is placed in the year that makes it no later than a day after
// the input's reference time (its modification time, or now), and later
// stamps move to the next year when the month goes back by half a year or
// more (December → January). A stamp that jumps forward by half a year (a
// December line among January ones) belongs to the year before; it does
// not move the clock.
type clock struct {
	loc   *time.Location
	force int // the year of the first yearless stamp, when set
	ref   time.Time

	year, month int // current inferred year and the month of the last stamp

	// Cache of the last local minute: y, m, d, h, min → Unix seconds.
	cy, cm, cd, ch, cmin int
	cunix                int64
	cok                  bool

	zones map[int]*time.Location
}

func newClock(loc *time.Location, force int) *clock {
	if loc == nil {
		loc = time.Local
	}
	return &clock{loc: loc, force: force, zones: map[int]*time.Location{}}
}

// reset starts a new input whose stamps end around ref.
func (c *clock) reset(ref time.Time) {
	if ref.IsZero() {
		ref = time.Now()
	}
	c.ref = ref.In(c.loc)
	c.year, c.month = 0, 0
}

func (c *clock) time(st *Stamp) time.Time {
	y := st.Year
	if y == 0 {
		y = c.inferYear(st)
	}
	if st.HasZone {
		z, ok := c.zones[st.Offset]
		if !ok {
			z = time.FixedZone("", st.Offset)
			if st.Offset == 0 {
				z = time.UTC
			}
			c.zones[st.Offset] = z
		}
		sec := civilSeconds(y, st.Month, st.Day, st.Hour, st.Minute, st.Second) - int64(st.Offset)
		return time.Unix(sec, int64(st.Nanosecond)).In(z)
	}
	if !c.cok || c.cmin != st.Minute || c.ch != st.Hour || c.cd != st.Day || c.cm != st.Month || c.cy != y {
		c.cy, c.cm, c.cd, c.ch, c.cmin = y, st.Month, st.Day, st.Hour, st.Minute
		c.cunix = time.Date(y, time.Month(st.Month), st.Day, st.Hour, st.Minute, 0, 0, c.loc).Unix()
		c.cok = true
	}
	return time.Unix(c.cunix+int64(st.Second), int64(st.Nanosecond)).In(c.loc)
}

func (c *clock) inferYear(st *Stamp) int {
	if c.year == 0 {
		if c.force != 0 {
			c.year = c.force
		} else {
			c.year = c.ref.Year()
			t := time.Date(c.year, time.Month(st.Month), st.Day, st.Hour, st.Minute, st.Second, 0, c.loc)
			if t.After(c.ref.Add(24 * time.Hour)) {
				c.year--
			}
		}
		c.month = st.Month
		return c.year
	}
	switch d := st.Month - c.month; {
	case d <= -6:
		c.year++
		c.month = st.Month
	case d >= 6:
		return c.year - 1
	default:
		c.month = st.Month
	}
	return c.year
}

// civilSeconds is the number of seconds from the Unix epoch to the given
// proleptic Gregorian date and time in UTC (Howard Hinnant's days_from_civil).
func civilSeconds(y, m, d, hh, mm, ss int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era = (y - 399) / 400
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	days := int64(era)*146097 + int64(doe) - 719468
	return days*86400 + int64(hh*3600+mm*60+ss)
}
