package config

import (
	"strings"
	"testing"
)

func TestConnectionCapsFitTheFileDescriptorLimit(t *testing.T) {
	t.Parallel()
	all := Listen{Milter: "inet:127.0.0.1:8895", Policy: "127.0.0.1:10045", HTTP: "127.0.0.1:8098"}
	milterOnly := Listen{Milter: "unix:/run/stray.sock"}
	set := all
	set.MaxConnections = MaxConnections{Milter: 100, HTTP: 20}
	tests := []struct {
		name   string
		listen Listen
		nofile uint64
		want   MaxConnections
	}{
		{"DefaultsUnderAHighLimit", all, 1 << 20, MaxConnections{512, 256, 256, 256, 256}},
		{"ShrunkInProportionUnder300", all, 300, MaxConnections{118, 59, 59, 256, 256}},
		{"AListenerThatIsOffTakesNoShare", milterOnly, 300, MaxConnections{236, 256, 256, 256, 256}},
		{"SetCapsAreKeptAndTheRestShareWhatIsLeft", set, 300, MaxConnections{100, 116, 20, 256, 256}},
		{"NeverBelowOne", all, 10, MaxConnections{1, 1, 1, 256, 256}},
		// A relay session holds two descriptors (client and next hop):
		// 236 descriptors shared by 512 milter and 256 relay sessions of
		// two give each half its share: 118 and 59.
		{"ARelaySessionTakesTwoDescriptors", Listen{Milter: "inet:127.0.0.1:8895", Relay: "127.0.0.1:10025"}, 300, MaxConnections{118, 256, 256, 59, 256}},
		{"TheSinkSharesLikeTheOthers", Listen{Sink: "127.0.0.1:2525", HTTP: "127.0.0.1:8098"}, 300, MaxConnections{512, 256, 118, 256, 118}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := tt.listen.Caps(tt.nofile)
			if got != tt.want {
				t.Fatalf("Caps(%d) = %+v, want %+v", tt.nofile, got, tt.want)
			}
			if tt.nofile < 1<<20 && tt.nofile > FDReserve {
				if sum := uint64(got.Milter + got.Policy + got.HTTP); tt.listen == all && sum > tt.nofile-FDReserve {
					t.Fatalf("caps sum to %d, over the limit %d less the reserve", sum, tt.nofile)
				}
			}
		})
	}
}

func TestNegativeConnectionCapsAreProblems(t *testing.T) {
	t.Parallel()
	c, err := Parse(strings.NewReader("listen:\n  max_connections:\n    milter: -1\n    http: 5\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen.MaxConnections.HTTP != 5 {
		t.Fatalf("http cap %d, want 5", c.Listen.MaxConnections.HTTP)
	}
	err = c.Validate()
	if err == nil || !strings.Contains(err.Error(), "listen.max_connections.milter: -1") {
		t.Fatalf("Validate: %v, want a listen.max_connections.milter problem", err)
	}
}
