package token

import "testing"

// BenchmarkVerify measures one verification, as done once per request or
// stream, for every algorithm.
func BenchmarkVerify(b *testing.B) {
	for _, alg := range algs {
		b.Run(alg, func(b *testing.B) {
			v := verifierFor(b, alg)
			token := signAlg(b, alg, claims())
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(token, now); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRightsMatch measures one right check, as done per request.
func BenchmarkRightsMatch(b *testing.B) {
	r, err := ParseRights([]string{"!chat/secret", "chat/*", "@alice"}, []string{"*"})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if !r.CanPublish("chat/general") || r.CanPublish("chat/secret") || !r.CanSubscribe("") {
			b.Fatal("wrong rights")
		}
	}
}
