package host_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/keystep/keystep/plugin/host"
	"github.com/keystep/keystep/plugin/step"
	"github.com/keystep/keystep/provider/authenticator"
)

// A host identity provider launches keystep, invites a user to enroll
// her phone, and runs the passwordless step at sign-in: Begin, show the
// number (and the QR code), Await the decision.
func ExampleLaunch() {
	ctx := context.Background()
	dataDir := exampleDataDir() // where keystep keeps its SQLite store

	// keystep's configuration, as its YAML file would hold it: the plugin
	// runs the device API that phones call on its own listener.
	config := fmt.Appendf(nil, "listen: 127.0.0.1:0\ndata_dir: %s\n", dataDir)
	c, err := host.Launch(ctx, host.Options{
		Path:   keystepBin, // the keystep binary
		Config: config,
		// Checksum: the binary's SHA-256, from a trusted source.
		Logger: slog.New(slog.DiscardHandler), // your logger: the plugin's log lines come here
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	// An admin adds alice (or the directory does) and invites her: she
	// opens the link (or scans it as a QR code) in the keystep app.
	if _, err := c.AddAccount(ctx, step.NewAccount{Username: "alice", Email: "alice@example.com"}); err != nil {
		log.Fatal(err)
	}
	inv, err := c.Invite(ctx, step.AccountRef{Username: "alice"})
	if err != nil {
		log.Fatal(err)
	}
	phone := examplePhone(inv.Link) // stands in for alice's app

	// Sign-in: the host has checked the username; keystep does the rest.
	tx, err := c.Begin(ctx, step.BeginRequest{Username: "alice", Client: "Example IdP", IP: "192.0.2.1"})
	if err != nil {
		log.Fatal(err) // errors.Is(err, flows.ErrAccountSuspended), flows.ErrNoDevice …
	}
	fmt.Printf("match the %d-digit number on your phone (QR code: %t)\n", len(tx.Number), len(tx.QRPNG) > 0)

	go exampleApprove(phone, tx) // alice taps the number shown on the page

	res, err := c.Await(ctx, tx.ID, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("sign-in", res.Status, "by", res.Method)
	// Output:
	// match the 2-digit number on your phone (QR code: true)
	// sign-in approved by push
}

// exampleDataDir makes an empty data directory.
func exampleDataDir() string {
	dir, err := os.MkdirTemp(testDir, "example-")
	if err != nil {
		log.Fatal(err)
	}
	return dir
}

// examplePhone enrolls a reference authenticator with the invitation.
func examplePhone(link string) *authenticator.Authenticator {
	phone, err := authenticator.Open(filepath.Join(testDir, "example-phone.json"))
	if err != nil {
		log.Fatal(err)
	}
	if _, err := phone.Enroll(context.Background(), link); err != nil {
		log.Fatal(err)
	}
	return phone
}

// exampleApprove approves the sign-in on the phone with its number.
func exampleApprove(phone *authenticator.Authenticator, tx step.Transaction) {
	if err := approvePending(context.Background(), phone, tx.ID, tx.Number); err != nil {
		log.Fatal(err)
	}
}
