// Package token verifies and mints the JSON Web Tokens of PROTOCOL.md §8.
//
// A token names a user (its "sub") and grants rights (its "msgbus" claim:
// pattern lists of channels it may publish to and subscribe to). Tokens are
// signed either with a shared secret (HS256, --token-secret) or with a
// private key whose public half the server holds (--token-key: RS256, ES256
// or EdDSA). A Verifier accepts exactly the algorithms its configuration
// can check and nothing else: never "none", never an HS256 token when only
// a public key is set, and never an HS256 token keyed with the public key's
// bytes.
//
// The package knows nothing of HTTP: the server finds the raw token (header,
// query or cookie), calls Verify once per request or stream, and maps an
// error wrapping ErrInvalid to 401 and a right that Rights does not grant to
// 403.
package token

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Leeway is how far Verify lets the clocks of the token's signer and the
// server disagree: a token is accepted until Leeway after its "exp" and from
// Leeway before its "nbf". It is small, as clocks of servers are kept in
// sync; a stream that must end when its token expires may end at
// Claims.Expires, without it.
const Leeway = 5 * time.Second

// MaxTokenBytes is the longest raw token Verify looks at; a longer one is
// refused before it is decoded, which bounds the work an anonymous client
// can make the server do. Mint refuses to make a longer one.
const MaxTokenBytes = 4096

// minRSABits is the smallest RSA key NewVerifier takes.
const minRSABits = 2048

// Config says which tokens a Verifier accepts. Either field or both may be
// set; a Verifier with neither is an error.
type Config struct {
	// Secret is the HS256 shared secret (--token-secret). Empty: HS256
	// tokens are refused, and Mint fails with ErrNoSecret. Any length is
	// taken; use at least 32 random bytes, as HS256's strength is the
	// secret's.
	Secret string

	// KeyPEM is the contents of a PEM file (--token-key) holding one public
	// key: "PUBLIC KEY" (PKIX: RSA, ECDSA P-256 or Ed25519), "RSA PUBLIC
	// KEY" (PKCS #1) or a "CERTIFICATE" whose key is one of those. The key's
	// type fixes the one algorithm accepted with it: RS256 for RSA (of at
	// least 2048 bits), ES256 for P-256, EdDSA for Ed25519. Nil: tokens
	// signed with a private key are refused.
	KeyPEM []byte
}

// A Verifier checks tokens against a Config. It is safe for concurrent use.
type Verifier struct {
	secret  []byte           // nil when no --token-secret
	key     crypto.PublicKey // nil when no --token-key
	keyAlg  string           // the algorithm key verifies: RS256, ES256 or EdDSA
	algs    []string         // the algorithms accepted, for jwt.WithValidMethods
	keyfunc jwt.Keyfunc
}

// NewVerifier returns a Verifier for cfg. Its errors name the flag to fix
// (--token-secret or --token-key): neither set, a PEM file that does not
// hold exactly one public key, a key of a type or size not supported.
func NewVerifier(cfg Config) (*Verifier, error) {
	if cfg.Secret == "" && cfg.KeyPEM == nil {
		return nil, errors.New("token: neither --token-secret nor --token-key is set")
	}
	v := &Verifier{}
	if cfg.Secret != "" {
		v.secret = []byte(cfg.Secret)
		v.algs = append(v.algs, jwt.SigningMethodHS256.Alg())
	}
	if cfg.KeyPEM != nil {
		key, alg, err := parseKey(cfg.KeyPEM)
		if err != nil {
			return nil, fmt.Errorf("token: --token-key: %w", err)
		}
		v.key, v.keyAlg = key, alg
		v.algs = append(v.algs, alg)
	}
	v.keyfunc = v.pickKey
	return v, nil
}

// pickKey is the Verifier's jwt.Keyfunc: the secret for HS256, the public
// key for the one algorithm of its type, and an error for anything else,
// whatever the parser's allow-list already said. The methods are compared
// by identity, so that no signing method registered elsewhere under one of
// these names is used.
func (v *Verifier) pickKey(t *jwt.Token) (any, error) {
	switch m := t.Method; {
	case m == jwt.SigningMethodHS256 && v.secret != nil:
		return v.secret, nil
	case v.key == nil:
	case m == jwt.SigningMethodRS256 && v.keyAlg == "RS256",
		m == jwt.SigningMethodES256 && v.keyAlg == "ES256",
		m == jwt.SigningMethodEdDSA && v.keyAlg == "EdDSA":
		return v.key, nil
	}
	return nil, errAlg
}

// errAlg is pickKey's answer to an algorithm it has no key for.
var errAlg = errors.New("algorithm not accepted")

// parseKey reads the one public key of a PEM file and says which algorithm
// verifies with it.
func parseKey(data []byte) (crypto.PublicKey, string, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, "", errors.New("no PEM block found")
	}
	if next, _ := pem.Decode(rest); next != nil || strings.TrimSpace(string(rest)) != "" {
		return nil, "", errors.New("more than a single PEM block; give one public key")
	}
	var (
		key any
		err error
	)
	switch block.Type {
	case "PUBLIC KEY":
		key, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		key, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
			key = cert.PublicKey
		}
	default:
		if strings.Contains(block.Type, "PRIVATE KEY") {
			return nil, "", fmt.Errorf("a %s, not a public key: give the public half only", block.Type)
		}
		return nil, "", fmt.Errorf("a PEM block of type %q, not a public key", block.Type)
	}
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", block.Type, err)
	}
	switch k := key.(type) {
	case *rsa.PublicKey:
		if n := k.N.BitLen(); n < minRSABits {
			return nil, "", fmt.Errorf("an RSA key of %d bits; at least %d are needed", n, minRSABits)
		}
		return k, "RS256", nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, "", fmt.Errorf("an ECDSA key on %s; only P-256 (ES256) is supported", k.Curve.Params().Name)
		}
		return k, "ES256", nil
	case ed25519.PublicKey:
		return k, "EdDSA", nil
	}
	return nil, "", fmt.Errorf("a key of type %T; supported: RSA (RS256), ECDSA P-256 (ES256), Ed25519 (EdDSA)", key)
}
