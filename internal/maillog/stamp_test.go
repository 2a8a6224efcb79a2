package maillog

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestParseStampAcceptsEverySyslogAndISOForm(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want Stamp
		rest string
	}{
		{"Nov 22 16:06:26 host x", Stamp{Month: 11, Day: 22, Hour: 16, Minute: 6, Second: 26}, "host x"},
		{"Jan  2 03:04:05 host", Stamp{Month: 1, Day: 2, Hour: 3, Minute: 4, Second: 5}, "host"},
		{"Jan 2 03:04:05 host", Stamp{Month: 1, Day: 2, Hour: 3, Minute: 4, Second: 5}, "host"},
		{"Feb 29 23:59:60 host", Stamp{Month: 2, Day: 29, Hour: 23, Minute: 59, Second: 59}, "host"},
		{"Mar  9 10:00:00.123456 host", Stamp{Month: 3, Day: 9, Hour: 10, Nanosecond: 123456000}, "host"},
		{"Mar  9 2023 10:00:00 host", Stamp{Year: 2023, Month: 3, Day: 9, Hour: 10}, "host"},
		{"2023 Mar  9 10:00:00 host", Stamp{Year: 2023, Month: 3, Day: 9, Hour: 10}, "host"},
		{"2024-01-31T08:15:00Z host", Stamp{Year: 2024, Month: 1, Day: 31, Hour: 8, Minute: 15, HasZone: true}, "host"},
		{"2024-01-31T08:15:00.5+01:00 host", Stamp{Year: 2024, Month: 1, Day: 31, Hour: 8, Minute: 15, Nanosecond: 5e8, HasZone: true, Offset: 3600}, "host"},
		{"2024-01-31T08:15:00-0530 host", Stamp{Year: 2024, Month: 1, Day: 31, Hour: 8, Minute: 15, HasZone: true, Offset: -19800}, "host"},
		{"2024-01-31T08:15:00 host", Stamp{Year: 2024, Month: 1, Day: 31, Hour: 8, Minute: 15}, "host"},
		{"2024-01-31 08:15:00 1rABCD", Stamp{Year: 2024, Month: 1, Day: 31, Hour: 8, Minute: 15}, "1rABCD"},
		{"2024-01-31 08:15:00.123 +0100 1rABCD", Stamp{Year: 2024, Month: 1, Day: 31, Hour: 8, Minute: 15, Nanosecond: 123e6, HasZone: true, Offset: 3600}, "1rABCD"},
	} {
		st, i, ok := parseStamp(tc.in)
		if !ok {
			t.Errorf("%q: not parsed", tc.in)
			continue
		}
		if st != tc.want || tc.in[i:] != tc.rest {
			t.Errorf("%q: got %+v rest %q, want %+v rest %q", tc.in, st, tc.in[i:], tc.want, tc.rest)
		}
	}
}

func TestParseStampRejectsImpossibleTimestamps(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		"", "Nov 22", "Nov 22 16:06:26", // nothing after the stamp
		"Foo 22 16:06:26 host", "Nov 32 16:06:26 host", "Feb 30 16:06:26 host", "Nov 22 24:06:26 host",
		"Nov 22 16:60:26 host", "Nov 22 16:06:61 host", "Nov 22 16:06 host x y", "Nov 22 16:06:26.x host",
		"2023-02-29T00:00:00Z host", "2024-13-01T00:00:00Z host", "2024-01-01X00:00:00Z host",
		"2024-01-01T00:00:00+25:00 host", "2024-01-01T00:00:00Q host", "20x4-01-01T00:00:00Z host",
		"Mar  9 20x3 10:00:00 host", "Nov 00 16:06:26 host",
	} {
		if st, _, ok := parseStamp(in); ok {
			t.Errorf("%q parsed as %+v", in, st)
		}
	}
}

func TestClockInfersTheYearFromTheInputsModificationTime(t *testing.T) {
	t.Parallel()
	utc := time.UTC
	for _, tc := range []struct {
		name  string
		ref   time.Time
		force int
		lines []Stamp
		want  []string
	}{
		{"within the year of the file", time.Date(2024, 6, 30, 0, 0, 0, 0, utc), 0,
			[]Stamp{{Month: 3, Day: 1}, {Month: 6, Day: 29}}, []string{"2024-03-01", "2024-06-29"}},
		{"a first month after the file's is last year", time.Date(2025, 2, 10, 0, 0, 0, 0, utc), 0,
			[]Stamp{{Month: 11, Day: 20}, {Month: 12, Day: 31}, {Month: 1, Day: 1}, {Month: 2, Day: 9}},
			[]string{"2024-11-20", "2024-12-31", "2025-01-01", "2025-02-09"}},
		{"a December line among January ones is last year's", time.Date(2025, 1, 5, 0, 0, 0, 0, utc), 0,
			[]Stamp{{Month: 12, Day: 31}, {Month: 1, Day: 1}, {Month: 12, Day: 31}, {Month: 1, Day: 2}},
			[]string{"2024-12-31", "2025-01-01", "2024-12-31", "2025-01-02"}},
		{"a stamp a little after the file is the same year", time.Date(2024, 6, 30, 23, 0, 0, 0, utc), 0,
			[]Stamp{{Month: 7, Day: 1}}, []string{"2024-07-01"}},
		{"a forced year", time.Date(2030, 1, 1, 0, 0, 0, 0, utc), 2019,
			[]Stamp{{Month: 12, Day: 30}, {Month: 1, Day: 2}}, []string{"2019-12-30", "2020-01-02"}},
		{"stamps with a year keep it", time.Date(2030, 1, 1, 0, 0, 0, 0, utc), 0,
			[]Stamp{{Year: 2001, Month: 5, Day: 5}}, []string{"2001-05-05"}},
	} {
		c := newClock(utc, tc.force)
		c.reset(tc.ref)
		for i, st := range tc.lines {
			if got := c.time(&st).Format("2006-01-02"); got != tc.want[i] {
				t.Errorf("%s: line %d: %s, want %s", tc.name, i, got, tc.want[i])
			}
		}
	}
}

func TestClockTimesMatchTimeDateAcrossDaylightSaving(t *testing.T) {
	t.Parallel()
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skip("no zoneinfo:", err)
	}
	c := newClock(berlin, 2024)
	c.reset(time.Date(2024, 12, 31, 0, 0, 0, 0, berlin))
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 20000; i++ {
		// Around the spring and autumn changes, and anywhere.
		day := []int{31, 27, 1 + r.IntN(28)}[r.IntN(3)]
		month := []int{3, 10, 1 + r.IntN(12)}[r.IntN(3)]
		if month == 2 && day > 29 {
			day = 28
		}
		if month == 4 || month == 6 || month == 9 || month == 11 {
			day = min(day, 30)
		}
		st := Stamp{Month: month, Day: day, Hour: r.IntN(24), Minute: r.IntN(60), Second: r.IntN(60), Nanosecond: r.IntN(1e9)}
		c.year, c.month = 2024, month // no rollover in this test
		got := c.time(&st)
		want := time.Date(2024, time.Month(month), day, st.Hour, st.Minute, st.Second, st.Nanosecond, berlin)
		if !got.Equal(want) {
			t.Fatalf("%+v: %v, want %v", st, got, want)
		}
	}
}

func TestCivilSecondsMatchesTheTimePackage(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 10000; i++ {
		y, m, d := 1+r.IntN(9998), 1+r.IntN(12), 1+r.IntN(28)
		hh, mm, ss := r.IntN(24), r.IntN(60), r.IntN(60)
		if got, want := civilSeconds(y, m, d, hh, mm, ss), time.Date(y, time.Month(m), d, hh, mm, ss, 0, time.UTC).Unix(); got != want {
			t.Fatalf("%d-%d-%d %d:%d:%d: %d, want %d", y, m, d, hh, mm, ss, got, want)
		}
	}
}
