// Package phonetest is a phone for tests that call a flows.Service in
// process: it enrolls with an invitation and signs decisions, as the app
// does over the device API.
package phonetest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"testing"

	"github.com/keystep/keystep/flows"
)

// Phone is an enrolled device and its private key.
type Phone struct {
	Key    *ecdsa.PrivateKey
	Device flows.Device
}

// Enroll invites user and enrolls a new phone with the invitation.
func Enroll(t testing.TB, svc *flows.Service, user string) Phone {
	t.Helper()
	ctx := context.Background()
	_, link, err := svc.Invite(ctx, "admin", user)
	if err != nil {
		t.Fatalf("invite %s: %v", user, err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := flows.EnrollPayload(link.Server, link.Token, der)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := flows.SignES256(key, msg)
	if err != nil {
		t.Fatal(err)
	}
	d, _, err := svc.Enroll(ctx, flows.EnrollRequest{Token: link.Token, PublicKey: der, Signature: sig, Name: "test phone"})
	if err != nil {
		t.Fatalf("enroll %s: %v", user, err)
	}
	return Phone{Key: key, Device: d}
}
