package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSendersConfig(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte(strings.Repeat("s", 40)), 0o600); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(dir, "open")
	if err := os.WriteFile(open, []byte(strings.Repeat("s", 40)), 0o644); err != nil {
		t.Fatal(err)
	}
	load := func(yaml string) Config {
		t.Helper()
		c := defaultConfig()
		if err := c.parseYAML([]byte(yaml), "t.yaml"); err != nil {
			t.Fatalf("parse %q: %v", yaml, err)
		}
		return c
	}

	c := load("smtp:\n  host: 127.0.0.1\n  port: 2525\n  security: none\n  from: keystep@example.com\nsms:\n  provider: webhook\n  url: http://127.0.0.1:9/sms\n  secret_file: " + secret + "\n")
	senders, pusher, err := c.buildSenders()
	if err != nil || senders.Email == nil || senders.SMS == nil || pusher != nil {
		t.Fatalf("build: %+v %v %v", senders, pusher, err)
	}
	empty := load("")
	if none, pusher, err := empty.buildSenders(); err != nil || none.Email != nil || none.SMS != nil || pusher != nil {
		t.Fatalf("no sections must mean no senders: %+v %v %v", none, pusher, err)
	}

	for yaml, want := range map[string]string{
		"sms:\n  provider: pigeon\n":                                       "sms.provider",
		"sms:\n  provider: webhook\n  url: http://127.0.0.1:9/\n":          "sms.secret_file",
		"sms:\n  provider: webhook\n  secret_file: " + open + "\n":         "open to other users",
		"smtp:\n  host: mail.example.com\n  security: none\n  from: a@b\n": "smtp",
		"apns:\n  key_file: " + filepath.Join(dir, "missing.p8") + "\n":    "apns.key_file",
		"fcm:\n  service_account_file: " + secret + "\n":                   "fcm",
	} {
		c := load(yaml)
		if _, _, err := c.buildSenders(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want it to mention %q", yaml, err, want)
		}
	}
	c = defaultConfig()
	if err := c.parseYAML([]byte("smtp:\n  hots: x\n"), "t.yaml"); err == nil || !strings.Contains(err.Error(), "smtp.hots") {
		t.Fatalf("unknown key: %v", err)
	}
}

func TestReplaceOnEnrollConfig(t *testing.T) {
	c := defaultConfig()
	if err := c.parseYAML([]byte("devices:\n  replace_on_enroll: true\n"), "t.yaml"); err != nil {
		t.Fatal(err)
	}
	if !c.flowsConfig("http://127.0.0.1:8080").ReplaceDevicesOnEnroll {
		t.Fatal("devices.replace_on_enroll did not reach flows")
	}
	if err := c.parseYAML([]byte("devices:\n  replace_on_enroll: yes please\n"), "t.yaml"); err == nil || !strings.Contains(err.Error(), "devices.replace_on_enroll") {
		t.Fatalf("bad bool: %v", err)
	}
}
