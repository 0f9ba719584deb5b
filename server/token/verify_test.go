package token

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var algs = []string{"HS256", "RS256", "ES256", "EdDSA"}

func TestVerifyAcceptsEveryAlgorithm(t *testing.T) {
	for _, alg := range algs {
		t.Run(alg, func(t *testing.T) {
			v := verifierFor(t, alg)
			c, err := v.Verify(signAlg(t, alg, claims()), now)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if c.User != "alice" {
				t.Fatalf("User %q, want alice", c.User)
			}
			if want := now.Add(time.Hour); !c.Expires.Equal(want) || c.Expires.Location() != time.UTC {
				t.Fatalf("Expires %v, want %v in UTC", c.Expires, want)
			}
			if !c.Rights.CanPublish("chat/a") || !c.Rights.CanSubscribe("@alice") || c.Rights.CanPublish("@alice") {
				t.Fatalf("Rights %+v are not those of the token", c.Rights)
			}
		})
	}
}

// TestVerifyAcceptsBothWithSecretAndKey: a Verifier with a secret and a key
// takes tokens signed with either.
func TestVerifyAcceptsBothWithSecretAndKey(t *testing.T) {
	for _, alg := range algs[1:] {
		v := newVerifier(t, Config{Secret: secret, KeyPEM: keys()[alg].pem})
		for _, a := range []string{"HS256", alg} {
			if _, err := v.Verify(signAlg(t, a, claims()), now); err != nil {
				t.Fatalf("secret and %s key, %s token: %v", alg, a, err)
			}
		}
	}
}

// TestVerifyTimes checks exp and nbf at the edges of Leeway, for every
// algorithm, against the instant given rather than the clock.
func TestVerifyTimes(t *testing.T) {
	tests := []struct {
		name  string
		edits map[string]any
		want  string // "" for valid
	}{
		{"expired", map[string]any{"exp": now.Add(-time.Minute).Unix()}, "expired at 2026-03-01T11:59:00Z"},
		{"expired by the leeway", map[string]any{"exp": now.Add(-Leeway).Unix()}, "expired"},
		{"expired within the leeway", map[string]any{"exp": now.Add(-Leeway + time.Second).Unix()}, ""},
		{"not yet valid", map[string]any{"nbf": now.Add(time.Minute).Unix()}, "not valid before 2026-03-01T12:01:00Z"},
		{"not yet valid past the leeway", map[string]any{"nbf": now.Add(Leeway + time.Second).Unix()}, "not valid before"},
		{"not yet valid within the leeway", map[string]any{"nbf": now.Add(Leeway).Unix()}, ""},
		{"valid from now", map[string]any{"nbf": now.Unix()}, ""},
		{"missing exp", map[string]any{"exp": nil}, "missing exp"},
		{"null exp", map[string]any{"exp": "null-placeholder"}, ""}, // replaced below
		{"iat ignored, in the future", map[string]any{"iat": now.Add(time.Hour).Unix()}, ""},
		{"iat ignored, of a wrong type", map[string]any{"iat": "yesterday"}, ""},
		{"iss and aud ignored", map[string]any{"iss": 7, "aud": []int{1}}, ""},
		{"fractional exp", map[string]any{"exp": float64(now.Unix()) + 0.5}, ""},
		{"exp of a wrong type", map[string]any{"exp": "tomorrow"}, "malformed"},
	}
	for _, alg := range algs {
		v := verifierFor(t, alg)
		for _, tt := range tests {
			t.Run(alg+"/"+tt.name, func(t *testing.T) {
				c := with(claims(), tt.edits)
				want := tt.want
				if tt.name == "null exp" {
					c["exp"], want = nil, "missing exp"
				}
				_, err := v.Verify(signAlg(t, alg, c), now)
				if want == "" {
					if err != nil {
						t.Fatalf("Verify: %v", err)
					}
					return
				}
				checkInvalid(t, err, want)
			})
		}
	}
}

// TestVerifyRefusesWrongSignatures: a token signed with another key, or
// changed after signing, is refused for every algorithm.
func TestVerifyRefusesWrongSignatures(t *testing.T) {
	for _, alg := range algs {
		t.Run(alg, func(t *testing.T) {
			v := verifierFor(t, alg)
			var forged string
			if alg == "HS256" {
				forged = sign(t, jwt.SigningMethodHS256, []byte("another secret of thirty-two bytes!!"), claims())
			} else {
				forged = sign(t, keys()[alg].method, otherKeys()[alg], claims())
			}
			_, err := v.Verify(forged, now)
			checkInvalid(t, err, "bad signature")

			// Grant oneself more rights in a genuine token.
			good := strings.Split(signAlg(t, alg, claims()), ".")
			c := with(claims(), map[string]any{"msgbus": map[string]any{"publish": []string{"*"}}})
			body := strings.Split(signAlg(t, alg, c), ".")[1]
			_, err = v.Verify(good[0]+"."+body+"."+good[2], now)
			checkInvalid(t, err, "bad signature")

			// No signature at all.
			_, err = v.Verify(good[0]+"."+good[1]+".", now)
			checkInvalid(t, err, "bad signature")
		})
	}
}

// TestVerifyAcceptsOnlyConfiguredAlgorithms: each Verifier takes the
// algorithms of its key and secret and no other, whatever the token says.
func TestVerifyAcceptsOnlyConfiguredAlgorithms(t *testing.T) {
	k := keys()
	none := func(c jwt.Claims) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodNone, c).SignedString(jwt.UnsafeAllowNoneSignatureType)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	tests := []struct {
		name  string
		cfg   Config
		token string
		want  string
	}{
		{"alg none, secret", Config{Secret: secret}, none(claims()), `alg "none" not accepted (accepted: HS256)`},
		{"alg none, key", Config{KeyPEM: k["EdDSA"].pem}, none(claims()), `alg "none" not accepted`},
		{"alg none, both", Config{Secret: secret, KeyPEM: k["RS256"].pem}, none(claims()), `alg "none" not accepted (accepted: HS256, RS256)`},
		{"alg NONE", Config{Secret: secret}, raw(`{"alg":"NONE"}`, mustJSON(claims()), nil), `alg "NONE" not accepted`},
		{"alg missing", Config{Secret: secret}, raw(`{"typ":"JWT"}`, mustJSON(claims()), []byte("x")), "no alg"},
		{"alg not a string", Config{Secret: secret}, raw(`{"alg":["HS256"]}`, mustJSON(claims()), []byte("x")), "no alg"},
		{"HS token, RSA key only", Config{KeyPEM: k["RS256"].pem}, signAlg(t, "HS256", claims()), `alg "HS256" not accepted (accepted: RS256)`},
		{"HS token, Ed25519 key only", Config{KeyPEM: k["EdDSA"].pem}, signAlg(t, "HS256", claims()), `alg "HS256" not accepted`},
		{"RS token, secret only", Config{Secret: secret}, signAlg(t, "RS256", claims()), `alg "RS256" not accepted (accepted: HS256)`},
		{"ES token, secret only", Config{Secret: secret}, signAlg(t, "ES256", claims()), `alg "ES256" not accepted`},
		{"EdDSA token, secret only", Config{Secret: secret}, signAlg(t, "EdDSA", claims()), `alg "EdDSA" not accepted`},
		{"ES token, RSA key", Config{KeyPEM: k["RS256"].pem}, signAlg(t, "ES256", claims()), `alg "ES256" not accepted`},
		{"EdDSA token, P-256 key", Config{KeyPEM: k["ES256"].pem}, signAlg(t, "EdDSA", claims()), `alg "EdDSA" not accepted`},
		{"RS token, Ed25519 key", Config{Secret: secret, KeyPEM: k["EdDSA"].pem}, signAlg(t, "RS256", claims()), `alg "RS256" not accepted`},
		// Algorithms the RSA or P-256 key could verify, had we allowed them.
		{"PS256 with the RSA key", Config{KeyPEM: k["RS256"].pem}, sign(t, jwt.SigningMethodPS256, k["RS256"].priv, claims()), `alg "PS256" not accepted`},
		{"RS512 with the RSA key", Config{KeyPEM: k["RS256"].pem}, sign(t, jwt.SigningMethodRS512, k["RS256"].priv, claims()), `alg "RS512" not accepted`},
		{"HS512 with the secret", Config{Secret: secret}, sign(t, jwt.SigningMethodHS512, []byte(secret), claims()), `alg "HS512" not accepted`},
		{"unknown alg", Config{Secret: secret}, raw(`{"alg":"XY999"}`, mustJSON(claims()), []byte("x")), `alg "XY999" not accepted`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := newVerifier(t, tt.cfg).Verify(tt.token, now)
			checkInvalid(t, err, tt.want)
		})
	}
}

// TestVerifyRefusesKeyConfusion: an HS256 token keyed with the public key's
// PEM bytes (which anyone may have) is refused, whether or not a secret is
// also set, for every key type.
func TestVerifyRefusesKeyConfusion(t *testing.T) {
	for _, alg := range algs[1:] {
		pemBytes := keys()[alg].pem
		for _, key := range [][]byte{pemBytes, []byte(strings.TrimSpace(string(pemBytes)))} {
			forged := sign(t, jwt.SigningMethodHS256, key, claims())
			_, err := newVerifier(t, Config{KeyPEM: pemBytes}).Verify(forged, now)
			checkInvalid(t, err, `alg "HS256" not accepted`)
			_, err = newVerifier(t, Config{Secret: secret, KeyPEM: pemBytes}).Verify(forged, now)
			checkInvalid(t, err, "bad signature")
		}
	}
}

func TestVerifyRefusesMalformedTokens(t *testing.T) {
	v := newVerifier(t, Config{Secret: secret, KeyPEM: keys()["EdDSA"].pem})
	good := signAlg(t, "HS256", claims())
	parts := strings.Split(good, ".")
	big := signAlg(t, "HS256", with(claims(), map[string]any{"pad": strings.Repeat("x", MaxTokenBytes)}))
	tests := []struct {
		name, token, want string
	}{
		{"empty", "", "empty"},
		{"one part", "abc", "malformed"},
		{"two parts", parts[0] + "." + parts[1], "malformed"},
		{"four parts", good + ".x", "malformed"},
		{"bad base64", "!!." + parts[1] + "." + parts[2], "malformed"},
		{"padded base64", parts[0] + "=." + parts[1] + "." + parts[2], "malformed"},
		{"header not JSON", raw(`{"alg":`, mustJSON(claims()), nil), "malformed"},
		{"claims not JSON", raw(`{"alg":"HS256"}`, `{"sub":`, nil), "malformed"},
		{"claims not an object", signRaw(t, `{"alg":"HS256"}`, `["alice"]`, []byte(secret)), "malformed"},
		{"newline in the header", raw("{\"alg\":\"HS256\"\n,\n}", mustJSON(claims()), nil), "malformed"},
		{"control bytes in alg", raw("{\"alg\":\"HS\\n256\\r\"}", mustJSON(claims()), nil), `alg "HS\n256\r" not accepted`},
		{"too large", big, "too large"},
		{"too large, junk", strings.Repeat("a", MaxTokenBytes+1), "too large: 4097 bytes, at most 4096"},
		{"crit header", signRaw(t, `{"alg":"HS256","crit":["b64"],"b64":false}`, mustJSON(claims()), []byte(secret)), `"crit" header`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := v.Verify(tt.token, now)
			checkInvalid(t, err, tt.want)
		})
	}
	if len(good) > MaxTokenBytes || len(big) <= MaxTokenBytes {
		t.Fatalf("token sizes %d, %d do not test the limit", len(good), len(big))
	}
}

// TestVerifyUsers: sub must be a user name (see checkUser).
func TestVerifyUsers(t *testing.T) {
	v := newVerifier(t, Config{Secret: secret})
	tests := []struct {
		sub  any // nil: absent
		want string
	}{
		{"alice@example.com", ""},
		{"José", ""},
		{"用户", ""},
		{"a.b-c_d+e%f", ""},
		{"!bob", ""},
		{strings.Repeat("x", MaxUserBytes), ""},
		{nil, "sub is empty"},
		{"", "sub is empty"},
		{strings.Repeat("x", MaxUserBytes+1), "sub is longer than 128 bytes"},
		{"a/b", `sub holds '/'`},
		{"a,b", `sub holds ','`},
		{"a*", `sub holds '*'`},
		{"a?", `sub holds '?'`},
		{"a b", `sub holds ' '`},
		{"a\tb", `sub holds '\t'`},
		{"a\nb", `sub holds '\n'`},
		{"a\x7f", `sub holds '\x7f'`},
		{"a\u0085", "sub holds U+0085"},
		{"a\u00a0", "sub holds U+00A0"},
		{"ad\u202emin", "sub holds U+202E"},
		{"a\u200bb", "sub holds U+200B"},
		{"a\u2028", "sub holds U+2028"},
		{"a\xffb", "sub holds U+FFFD"}, // JSON decoding replaces the byte
		{"a\ufffdb", "sub holds U+FFFD"},
		{42, `malformed: claim "sub" is a JSON number`},
		{[]string{"alice"}, `malformed: claim "sub" is a JSON array`},
	}
	for _, tt := range tests {
		t.Run(strings.ToValidUTF8(mustJSON(tt.sub), "?"), func(t *testing.T) {
			c := claims()
			if tt.sub == nil {
				delete(c, "sub")
			} else {
				c["sub"] = tt.sub
			}
			var token string
			if s, ok := tt.sub.(string); ok && !utf8Valid(s) {
				// json.Marshal would replace the bad byte.
				token = signRaw(t, `{"alg":"HS256"}`, `{"sub":"`+s+`","exp":`+mustJSON(c["exp"])+`}`, []byte(secret))
			} else {
				token = signAlg(t, "HS256", c)
			}
			got, err := v.Verify(token, now)
			if tt.want == "" {
				if err != nil || got.User != tt.sub {
					t.Fatalf("Verify: %v, %v; want user %q", got, err, tt.sub)
				}
				return
			}
			checkInvalid(t, err, tt.want)
		})
	}
}

// TestVerifyMsgbusClaim: the rights claim is read strictly; a token without
// it has no rights but a user.
func TestVerifyMsgbusClaim(t *testing.T) {
	v := newVerifier(t, Config{Secret: secret})
	many := make([]string, 33)
	for i := range many {
		many[i] = "c" + strings.Repeat("x", i)
	}
	tests := []struct {
		name   string
		msgbus any // nil: absent
		want   string
	}{
		{"absent", nil, ""},
		{"null", "null-placeholder", ""},
		{"empty object", map[string]any{}, ""},
		{"empty lists", map[string]any{"publish": []string{}, "subscribe": nil}, ""},
		{"a string", "chat/*", "bad msgbus claim: not an object"},
		{"a number", 5, "bad msgbus claim: not an object"},
		{"a list", []string{"chat/*"}, "bad msgbus claim: not an object"},
		{"publish a string", map[string]any{"publish": "chat/*"}, `bad msgbus claim: "publish" is not a list of strings`},
		{"subscribe numbers", map[string]any{"subscribe": []int{1}}, `bad msgbus claim: "subscribe" is not a list of strings`},
		{"publish an object", map[string]any{"publish": map[string]any{}}, `"publish" is not a list of strings`},
		{"unknown key", map[string]any{"publish": []string{"a"}, "admin": true}, `bad msgbus claim: json: unknown field "admin"`},
		{"null entry", map[string]any{"publish": []any{nil}}, "bad msgbus claim: publish entry 1 \"\": is empty"},
		{"comma", map[string]any{"subscribe": []string{"a", "b,c"}}, `bad msgbus claim: subscribe entry 2 "b,c": contains ','`},
		{"too many", map[string]any{"publish": many}, "bad msgbus claim: publish list has 33 entries; at most 32"},
		{"too long", map[string]any{"publish": []string{strings.Repeat("x", 129)}}, "publish entry 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := claims()
			switch tt.msgbus {
			case nil:
				delete(c, "msgbus")
			case "null-placeholder":
				c["msgbus"] = nil
			default:
				c["msgbus"] = tt.msgbus
			}
			got, err := v.Verify(signAlg(t, "HS256", c), now)
			if tt.want != "" {
				checkInvalid(t, err, tt.want)
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if got.User != "alice" || !got.Rights.IsZero() || got.Rights.CanSubscribe("") || got.Rights.CanPublish("chat/a") {
				t.Fatalf("got %+v; want alice without rights", got)
			}
		})
	}
}

// TestVerifyErrorsAreOneLine: no part of a hostile token reaches an error
// as a line break.
func TestVerifyErrorsAreOneLine(t *testing.T) {
	v := newVerifier(t, Config{Secret: secret})
	for _, token := range []string{
		raw("{\"alg\":\"\\n\\r\\u2028\"}", mustJSON(claims()), nil),
		signRaw(t, `{"alg":"HS256"}`, "{\"sub\":\"x\",\"exp\":9999999999,\"msgbus\":{\"publish\":[\"a\\nb,c\"]}}", []byte(secret)),
		signRaw(t, `{"alg":"HS256"}`, "{\"sub\":\"x\",\"exp\":9999999999,\"msgbus\":{\"pub\\nlish\":[]}}", []byte(secret)),
		signRaw(t, `{"alg":"HS256"}`, "{\"sub\":\"x\",\"exp\":\"\\n\"}", []byte(secret)),
	} {
		_, err := v.Verify(token, now)
		checkInvalid(t, err, "")
	}
}

func TestNewVerifierErrorsNameTheFlag(t *testing.T) {
	k := keys()
	rsa1024 := pemOf(smallRSAKey(t))
	p384 := pemOf(p384Key(t))
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"nothing", Config{}, "neither --token-secret nor --token-key"},
		{"empty PEM", Config{KeyPEM: []byte{}}, "--token-key: no PEM block"},
		{"not PEM", Config{KeyPEM: []byte("ssh-ed25519 AAAA alice@host")}, "--token-key: no PEM block"},
		{"private key", Config{KeyPEM: []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")}, "--token-key: a PRIVATE KEY, not a public key"},
		{"other block", Config{KeyPEM: []byte("-----BEGIN FOO-----\nAAAA\n-----END FOO-----\n")}, `--token-key: a PEM block of type "FOO"`},
		{"bad DER", Config{KeyPEM: []byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")}, "--token-key: PUBLIC KEY: "},
		{"two keys", Config{KeyPEM: append(append([]byte{}, k["RS256"].pem...), k["EdDSA"].pem...)}, "--token-key: more than a single PEM block"},
		{"trailing junk", Config{KeyPEM: append(append([]byte{}, k["EdDSA"].pem...), "junk"...)}, "--token-key: more than a single PEM block"},
		{"small RSA", Config{KeyPEM: rsa1024}, "--token-key: an RSA key of 1024 bits; at least 2048"},
		{"P-384", Config{KeyPEM: p384}, "--token-key: an ECDSA key on P-384; only P-256"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := NewVerifier(tt.cfg)
			if err == nil || v != nil {
				t.Fatalf("NewVerifier: %v, %v; want an error", v, err)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "token: ") {
				t.Fatalf("error %q; want one starting token: and containing %q", err, tt.want)
			}
		})
	}
}

func TestNewVerifierReadsKeyFormats(t *testing.T) {
	k := keys()
	pkcs1 := pemBlock("RSA PUBLIC KEY", pkcs1Of(t, k["RS256"].priv))
	cert := pemBlock("CERTIFICATE", certOf(t, k["ES256"].priv))
	for name, tc := range map[string]struct {
		pem []byte
		alg string
	}{
		"PKCS #1":             {pkcs1, "RS256"},
		"certificate":         {cert, "ES256"},
		"with text around it": {append([]byte("a comment\n"), append(append([]byte{}, k["EdDSA"].pem...), "\n\n"...)...), "EdDSA"},
	} {
		t.Run(name, func(t *testing.T) {
			v := newVerifier(t, Config{KeyPEM: tc.pem})
			if _, err := v.Verify(signAlg(t, tc.alg, claims()), now); err != nil {
				t.Fatalf("Verify: %v", err)
			}
		})
	}
}

func TestVerifyErrorsWrapErrInvalid(t *testing.T) {
	_, err := newVerifier(t, Config{Secret: secret}).Verify("x", now)
	if !errors.Is(err, ErrInvalid) || !strings.HasPrefix(err.Error(), "invalid token: ") {
		t.Fatalf("error %v", err)
	}
}
