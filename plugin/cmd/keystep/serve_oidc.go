package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/provider"
	"github.com/keystep/keystep/provider/api"
	"github.com/keystep/keystep/provider/oidcop"
	"github.com/keystep/keystep/provider/steppage"
)

// mountFederation builds the OpenID Provider, the SAML IdP and the step
// page they share, and mounts them on the server.
func mountFederation(ctx context.Context, cfg Config, p *provider.Server, svc *flows.Service, secret []byte, publicURL, dataDir string, log *slog.Logger) error {
	var clients []oidcop.ClientConfig
	for _, cc := range cfg.OIDC.Clients {
		c, err := cc.toClient(readClientSecret)
		if err != nil {
			return fmt.Errorf("oidc client %s: %w", cc.ID, err)
		}
		clients = append(clients, c)
	}
	if cfg.demoClientOn() {
		path := filepath.Join(dataDir, demoClientSecretFile)
		secret, created, err := loadOrCreateToken(path)
		if err != nil {
			return fmt.Errorf("demo client secret: %w", err)
		}
		if created {
			log.Info("registered the demo client; keystep demo-app reads its secret from this file", "client_id", demoClientID, "secret_file", path)
		} else {
			log.Info("demo client", "client_id", demoClientID, "secret_file", path)
		}
		clients = append(clients, demoClient(secret))
	}
	u, err := url.Parse(publicURL)
	if err != nil {
		return fmt.Errorf("public URL: %w", err)
	}
	op, err := oidcop.New(oidcop.Options{
		Flows: svc, Issuer: publicURL, Insecure: cfg.InsecureDev, Clients: clients, Secret: secret,
		Keys: oidcop.KeyPolicy{RotateEvery: cfg.OIDC.RotateEvery}, RequestTTL: cfg.OIDC.RequestTTL, Logger: log,
		ClientIP: p.ClientIP, AuthorizePerIPPerMinute: cfg.OIDC.AuthorizePerIPPerMinute,
	})
	if err != nil {
		return err
	}
	idp, err := newSAMLIdP(ctx, cfg, p, svc, secret, publicURL, log)
	if err != nil {
		return err
	}
	requests := steppage.ByProtocol(svc.Store(), map[string]steppage.Requests{"oidc": op, "saml": idp})
	step, err := steppage.New(ctx, steppage.Options{
		Flows: svc, Requests: requests, SealKey: secret, Secure: secureCookies(u, cfg.InsecureDev),
		ClientIP: p.ClientIP, Logger: log,
	})
	if err != nil {
		return err
	}
	for _, path := range oidcop.Paths {
		p.Handle(path, op.Handler())
	}
	step.Register(p.Mux())
	p.MountKeys(string(flows.KeyUseOIDC), keyRing{op})
	p.MountKeys(string(flows.KeyUseSAML), keyRing{idp})
	log.Info("OpenID Provider", "issuer", op.Issuer(), "discovery", op.Issuer()+"/.well-known/openid-configuration", "clients", len(clients))
	return nil
}

// secureCookies says whether the step page's cookies carry Secure: always
// on https, and on http too unless --insecure-dev (browsers keep Secure
// cookies for http://localhost and 127.0.0.1, the first-run default).
func secureCookies(u *url.URL, insecureDev bool) bool {
	if u.Scheme == "https" {
		return true
	}
	return !insecureDev
}

// keySource is a front door's signing keys: the OpenID Provider's, or any
// other that lists them as oidcop.KeyInfo (the keyring's Info).
type keySource interface {
	SigningKeys(ctx context.Context) ([]oidcop.KeyInfo, error)
	RotateKeys(ctx context.Context) ([]oidcop.KeyInfo, error)
}

// keyRing shows a front door's keys to the admin API.
type keyRing struct{ src keySource }

func (k keyRing) SigningKeys(ctx context.Context) ([]api.SigningKey, error) {
	list, err := k.src.SigningKeys(ctx)
	return wireKeys(list), err
}

func (k keyRing) RotateKeys(ctx context.Context) ([]api.SigningKey, error) {
	list, err := k.src.RotateKeys(ctx)
	return wireKeys(list), err
}

func wireKeys(list []oidcop.KeyInfo) []api.SigningKey {
	out := make([]api.SigningKey, 0, len(list))
	for _, k := range list {
		out = append(out, api.SigningKey{ID: k.ID, Alg: k.Alg, Use: k.Use, CreatedAt: k.CreatedAt, ActiveAt: k.ActiveAt, RetireAt: k.RetireAt, Signing: k.Signing})
	}
	return out
}
