package store

import (
	"strings"
	"testing"
)

func TestRedactDSNHidesEveryFormOfPassword(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, dsn, want string
	}{
		{"URL userinfo", "postgres://stray:s3cret@db.internal:5432/stray?sslmode=verify-full", "postgres://stray:xxxxx@db.internal:5432/stray?sslmode=verify-full"},
		{"URL userinfo with an escaped character", "postgresql://stray:s3%40cret@db/stray", "postgresql://stray:xxxxx@db/stray"},
		{"URL userinfo with a raw @ and /", "postgres://stray:s3@c/ret@db/stray", "postgres://stray:xxxxx@db/stray"},
		{"URL without a password", "postgres://stray@db/stray?sslmode=require", "postgres://stray@db/stray?sslmode=require"},
		{"password query parameter", "postgres://stray@db/stray?password=s3cret&sslmode=require", "postgres://stray@db/stray?password=xxxxx&sslmode=require"},
		{"password query parameter in capitals", "postgres://db/stray?sslmode=require&PASSWORD=s3cret", "postgres://db/stray?sslmode=require&PASSWORD=xxxxx"},
		{"escaped password key", "postgres://db/stray?pass%77ord=s3cret", "postgres://db/stray?pass%77ord=xxxxx"},
		{"sslpassword query parameter", "postgres://db/stray?sslkey=/k.pem&sslpassword=s3cret", "postgres://db/stray?sslkey=/k.pem&sslpassword=xxxxx"},
		{"unparsable URL", "postgres://stray:s3cr%zzet@db/stray", "postgres://stray:xxxxx@db/stray"},
		{"mistyped scheme", "mysql://root:s3cret@db:3306/stray", "mysql://root:xxxxx@db:3306/stray"},
		{"key=value", "host=db user=stray password=s3cret dbname=stray", "host=db user=stray password=xxxxx dbname=stray"},
		{"key=value, quoted", "host=db password='s3 c\\'ret' dbname=stray", "host=db password=xxxxx dbname=stray"},
		{"key = value with spaces", "host=db password = s3cret dbname=stray", "host=db password=xxxxx dbname=stray"},
		{"key=value, last", "dbname=stray.db password=s3cret", "dbname=stray.db password=xxxxx"},
		{"bare userinfo", "root:s3cret@db/stray", "root:xxxxx@db/stray"},
		{"sqlite URL path", "sqlite:/var/lib/stray/stray.db", "sqlite:/var/lib/stray/stray.db"},
		{"sqlite triple slash", "sqlite:///var/lib/stray/stray.db", "sqlite:///var/lib/stray/stray.db"},
		{"sqlite path with an @ and a colon", "sqlite:/srv/a:b@c/stray.db", "sqlite:/srv/a:b@c/stray.db"},
		{"bare sqlite path", "/var/lib/stray/stray.db", "/var/lib/stray/stray.db"},
		{"empty", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := RedactDSN(tc.dsn); got != tc.want {
				t.Errorf("RedactDSN(%q) = %q, want %q", tc.dsn, got, tc.want)
			}
		})
	}
}

// Whatever the form, the password never shows.
func FuzzRedactDSN(f *testing.F) {
	f.Add("stray", "s3cret-pw", "db/stray", "sslmode=require")
	f.Add("root", "p@ss/w:rd", "h", "")
	f.Add("", "hunter2hunter2", "h/db", "x=y")
	f.Fuzz(func(t *testing.T, user, pass, rest, query string) {
		if len(pass) < 6 || strings.ContainsAny(pass, "&#?' \\\t\n\r\v\f") || strings.Contains(user+rest+query+"xxxxx", pass) {
			t.Skip()
		}
		for _, dsn := range []string{
			"postgres://" + user + ":" + pass + "@" + rest + "?" + query,
			"postgres://" + rest + "?" + query + "&password=" + pass,
			"host=" + rest + " password=" + pass + " " + query,
			"host=" + rest + " password='" + pass + "'",
		} {
			if strings.ContainsAny(user, "@/?#") || strings.ContainsAny(rest, "@?# ='\\") || strings.ContainsAny(query, "@#'\\ ") {
				continue
			}
			if got := RedactDSN(dsn); strings.Contains(got, pass) {
				t.Fatalf("RedactDSN(%q) = %q shows the password", dsn, got)
			}
		}
	})
}
