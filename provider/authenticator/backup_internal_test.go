package authenticator

import (
	"bytes"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
)

// countKDF replaces the key derivation with one that counts its calls and
// costs nothing, for the rest of the test.
func countKDF(t *testing.T) *atomic.Int32 {
	t.Helper()
	var n atomic.Int32
	real := argon2IDKey
	argon2IDKey = func(password, salt []byte, time, memory uint32, threads uint8, keyLen uint32) []byte {
		n.Add(1)
		return make([]byte, keyLen)
	}
	t.Cleanup(func() { argon2IDKey = real })
	return &n
}

// validEnvelope is a well-formed envelope (whose ciphertext opens under no
// passphrase) with one field replaced by each of repl's "key": value.
func validEnvelope(repl map[string]string) []byte {
	fields := []struct{ k, v string }{
		{"v", "1"},
		{"kdf", `"argon2id"`},
		{"argon2", `{"time":3,"memory_kib":65536,"threads":4}`},
		{"salt", `"AAAAAAAAAAAAAAAAAAAAAA"`},
		{"nonce", `"AAAAAAAAAAAAAAAA"`},
		{"ciphertext", `"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"`},
	}
	var b strings.Builder
	b.WriteString("{")
	for _, f := range fields {
		v := f.v
		if r, ok := repl[f.k]; ok {
			v = r
		}
		if v == "" {
			continue // dropped
		}
		if b.Len() > 1 {
			b.WriteString(",")
		}
		b.WriteString(`"` + f.k + `":` + v)
	}
	b.WriteString("}")
	return []byte(b.String())
}

func TestParseEnvelopeRefusesBeforeKDF(t *testing.T) {
	calls := countKDF(t)
	if _, err := parseEnvelope(validEnvelope(nil)); err != nil {
		t.Fatalf("the valid envelope: %v", err)
	}
	// Absurd KDF parameters are the point: a crafted backup must not make
	// the phone allocate gigabytes or spin for hours before the passphrase
	// is checked.
	for name, blob := range map[string][]byte{
		"memory 4 GiB":       validEnvelope(map[string]string{"argon2": `{"time":3,"memory_kib":4194304,"threads":4}`}),
		"memory max+1":       validEnvelope(map[string]string{"argon2": `{"time":3,"memory_kib":262145,"threads":4}`}),
		"memory too small":   validEnvelope(map[string]string{"argon2": `{"time":3,"memory_kib":8,"threads":4}`}),
		"memory overflows":   validEnvelope(map[string]string{"argon2": `{"time":3,"memory_kib":4294967296,"threads":4}`}),
		"memory negative":    validEnvelope(map[string]string{"argon2": `{"time":3,"memory_kib":-1,"threads":4}`}),
		"time a million":     validEnvelope(map[string]string{"argon2": `{"time":1000000,"memory_kib":65536,"threads":4}`}),
		"time zero":          validEnvelope(map[string]string{"argon2": `{"time":0,"memory_kib":65536,"threads":4}`}),
		"threads 255":        validEnvelope(map[string]string{"argon2": `{"time":3,"memory_kib":65536,"threads":255}`}),
		"threads zero":       validEnvelope(map[string]string{"argon2": `{"time":3,"memory_kib":65536,"threads":0}`}),
		"no parameters":      validEnvelope(map[string]string{"argon2": ""}),
		"unknown parameter":  validEnvelope(map[string]string{"argon2": `{"time":3,"memory_kib":65536,"threads":4,"parallelism":9}`}),
		"version 0":          validEnvelope(map[string]string{"v": "0"}),
		"version 2":          validEnvelope(map[string]string{"v": "2"}),
		"no version":         validEnvelope(map[string]string{"v": ""}),
		"kdf scrypt":         validEnvelope(map[string]string{"kdf": `"scrypt"`}),
		"kdf argon2i":        validEnvelope(map[string]string{"kdf": `"argon2i"`}),
		"short salt":         validEnvelope(map[string]string{"salt": `"AAAAAAAAAAA"`}),
		"long salt":          validEnvelope(map[string]string{"salt": `"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"`}),
		"padded salt":        validEnvelope(map[string]string{"salt": `"AAAAAAAAAAAAAAAAAAAAAA=="`}),
		"non-canonical salt": validEnvelope(map[string]string{"salt": `"AAAAAAAAAAAAAAAAAAAAAB"`}),
		"std base64 salt":    validEnvelope(map[string]string{"salt": `"AAAAAAAAAAAAAAAAAAAA+/"`}),
		"short nonce":        validEnvelope(map[string]string{"nonce": `"AAAA"`}),
		"no ciphertext":      validEnvelope(map[string]string{"ciphertext": ""}),
		"short ciphertext":   validEnvelope(map[string]string{"ciphertext": `"AAAAAAAA"`}),
		"unknown field":      []byte(strings.Replace(string(validEnvelope(nil)), `{`, `{"hint":"my dog's name",`, 1)),
		"trailing data":      append(validEnvelope(nil), []byte(" {}")...),
		"array":              []byte(`[]`),
		"null":               []byte(`null`),
		"empty":              nil,
		"blank":              []byte(" \n"),
		"truncated":          validEnvelope(nil)[:40],
		"too large":          append(validEnvelope(nil), bytes.Repeat([]byte(" "), MaxBackupSize)...),
	} {
		_, err := parseEnvelope(blob)
		if !errors.Is(err, ErrInvalidBackup) {
			t.Errorf("%s: parse: %v, want ErrInvalidBackup", name, err)
		}
		if _, err := OpenBackup(blob, "correct horse battery staple"); !errors.Is(err, ErrInvalidBackup) {
			t.Errorf("%s: open: %v, want ErrInvalidBackup", name, err)
		}
	}
	if n := calls.Load(); n != 0 {
		t.Fatalf("the KDF ran %d times on refused envelopes", n)
	}
	// The valid envelope does reach the KDF, and then fails to open.
	if _, err := OpenBackup(validEnvelope(nil), "correct horse battery staple"); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("open the valid envelope: %v, want ErrWrongPassphrase", err)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("the KDF ran %d times for one valid envelope, want 1", n)
	}
}

func TestKDFBounds(t *testing.T) {
	if err := DefaultKDF.check(); err != nil {
		t.Fatalf("the default parameters are out of bounds: %v", err)
	}
	// OWASP's minimum for Argon2id is accepted; anything weaker is not.
	if err := (KDFParams{Time: 2, MemoryKiB: 19 * 1024, Threads: 1}).check(); err != nil {
		t.Fatalf("OWASP's minimum: %v", err)
	}
	for _, p := range []KDFParams{{1, 19 * 1024, 1}, {2, 19*1024 - 1, 1}, {11, 65536, 4}, {3, 256*1024 + 1, 4}, {3, 65536, 17}, {3, 65536, 0}} {
		if err := p.check(); !errors.Is(err, ErrInvalidBackup) {
			t.Errorf("%+v: %v, want ErrInvalidBackup", p, err)
		}
	}
}

// FuzzParseEnvelope feeds arbitrary files to the envelope parser (which
// never runs the KDF): it never panics, and whatever it accepts is within
// every bound and has one canonical header.
func FuzzParseEnvelope(f *testing.F) {
	f.Fuzz(func(t *testing.T, blob []byte) {
		s, err := parseEnvelope(blob)
		if err != nil {
			if !errors.Is(err, ErrInvalidBackup) {
				t.Fatalf("refusal %v is not ErrInvalidBackup", err)
			}
			return
		}
		if err := s.kdf.check(); err != nil {
			t.Fatalf("accepted parameters out of bounds: %v", err)
		}
		if len(s.salt) != saltLen || len(s.nonce) != nonceLen || len(s.ciphertext) < gcmTagLen {
			t.Fatalf("accepted salt %d, nonce %d, ciphertext %d bytes", len(s.salt), len(s.nonce), len(s.ciphertext))
		}
		if !bytes.HasPrefix(s.header(), []byte("keystep-backup-v1\nargon2id\n")) {
			t.Fatalf("header %q", s.header())
		}
	})
}
