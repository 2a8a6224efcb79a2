package store

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
)

// compress encodes a message's content for storage. gzip rather than bare
// DEFLATE for its CRC-32 and length trailer: content that was damaged or cut
// short on disk fails to decode instead of coming back as half a message.
func compress(raw []byte) ([]byte, error) {
	var b bytes.Buffer
	b.Grow(len(raw)/3 + 64)
	w, err := gzip.NewWriterLevel(&b, gzip.DefaultCompression)
	if err != nil {
		return nil, fmt.Errorf("compress: %w", err)
	}
	if _, err := w.Write(raw); err != nil {
		return nil, fmt.Errorf("compress: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("compress: %w", err)
	}
	return b.Bytes(), nil
}

// decompress decodes stored content and checks it against the recorded size.
func decompress(stored []byte, size int64) ([]byte, error) {
	r, err := gzip.NewReader(bytes.NewReader(stored))
	if err != nil {
		return nil, fmt.Errorf("decompress: %w", err)
	}
	r.Multistream(false)
	raw := make([]byte, 0, size)
	buf := bytes.NewBuffer(raw)
	// Read at most one byte more than expected, so that corrupt content
	// cannot make us allocate without bound.
	n, err := io.Copy(buf, io.LimitReader(r, size+1))
	if err != nil {
		return nil, fmt.Errorf("decompress: %w", err)
	}
	if n != size {
		return nil, fmt.Errorf("decompress: %d bytes, want %d", n, size)
	}
	if err := r.Close(); err != nil {
		return nil, fmt.Errorf("decompress: %w", err)
	}
	return buf.Bytes(), nil
}
