package seal

import (
	"bytes"
	"testing"
)

func TestSealOpen(t *testing.T) {
	master := bytes.Repeat([]byte{7}, 32)
	k, err := Derive(master, "test")
	if err != nil {
		t.Fatal(err)
	}
	s := k.Seal([]byte("secret"), []byte("kid1"))
	p, err := k.Open(s, []byte("kid1"))
	if err != nil || string(p) != "secret" {
		t.Fatalf("Open = %q, %v", p, err)
	}
	if _, err := k.Open(s, []byte("kid2")); err == nil {
		t.Fatal("opened with another aad")
	}
	other, _ := Derive(master, "other")
	if _, err := other.Open(s, []byte("kid1")); err == nil {
		t.Fatal("opened with a key of another purpose")
	}
	s[len(s)-1] ^= 1
	if _, err := k.Open(s, []byte("kid1")); err == nil {
		t.Fatal("opened an altered value")
	}
	if _, err := k.Open([]byte("x"), nil); err == nil {
		t.Fatal("opened a short value")
	}
	if _, err := Derive(master[:31], "test"); err == nil {
		t.Fatal("derived from a short master secret")
	}
}
