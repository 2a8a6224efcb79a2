package store

import "fmt"

// rowIter is what collect needs of *sql.Rows.
type rowIter interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// collect reads every row with scan; errors are wrapped with what the
// query was for.
func collect[T any](rows rowIter, what string, scan func(rowIter) (T, error)) ([]T, error) {
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("store: %s: %w", what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: %s: %w", what, err)
	}
	return out, nil
}
