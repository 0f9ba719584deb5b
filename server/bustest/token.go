package bustest

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
)

// EditedToken returns the JWT tok with its sub claim changed to sub and
// its signature kept: what a person who edits their own token sends, and
// what the bus must refuse with 401.
func EditedToken(t testing.TB, tok, sub string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", tok)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("the JWT's payload: %v", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatalf("the JWT's claims: %v", err)
	}
	claims["sub"] = sub
	payload, err = json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	parts[1] = base64.RawURLEncoding.EncodeToString(payload)
	return strings.Join(parts, ".")
}
