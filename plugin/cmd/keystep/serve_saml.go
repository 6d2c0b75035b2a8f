package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/provider"
	"github.com/keystep/keystep/provider/samlidp"
)

// newSAMLIdP builds the SAML IdP from the configuration and starts loading
// its SPs' metadata (an SP whose metadata cannot be loaded is logged and
// refused until it can; it never stops the server).
func newSAMLIdP(ctx context.Context, cfg Config, p *provider.Server, svc *flows.Service, secret []byte, publicURL string, log *slog.Logger) (*samlidp.Provider, error) {
	var sps []samlidp.SPConfig
	for _, sc := range cfg.SAML.ServiceProviders {
		sp, err := sc.toSP(readCertFile)
		if err != nil {
			return nil, fmt.Errorf("saml service provider %s: %w", sc.ID, err)
		}
		sps = append(sps, sp)
	}
	idp, err := samlidp.New(samlidp.Options{
		Flows: svc, PublicURL: publicURL, Insecure: cfg.InsecureDev, Secret: secret, ServiceProviders: sps,
		Keys:       samlidp.KeyPolicy{RotateEvery: cfg.SAML.RotateEvery, PublishAhead: cfg.SAML.PublishAhead},
		RequestTTL: cfg.SAML.RequestTTL, AllowUnsignedRequests: cfg.SAML.WantSignedRequests != nil && !*cfg.SAML.WantSignedRequests,
		UnsignedMetadata: cfg.SAML.SignMetadata != nil && !*cfg.SAML.SignMetadata, MetadataValidFor: cfg.SAML.MetadataValidFor,
		SSOPerIPPerMinute: cfg.SAML.SSOPerIPPerMinute, ClassStrengths: cfg.SAML.AuthnContextStrengths,
		ClientIP: p.ClientIP, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	idp.Start(ctx)
	// Listen for SIGHUP before serving: one that came before Notify would
	// end the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go reloadOnHangup(ctx, hup, idp, log)
	for _, path := range samlidp.Paths {
		p.Handle(path, idp.Handler())
	}
	log.Info("SAML IdP", "entity_id", idp.EntityID(), "metadata", idp.EntityID(), "service_providers", idp.ServiceProviders())
	return idp, nil
}

// reloadOnHangup reads every SP's metadata again when hup gets SIGHUP (an SP changed its keys or endpoints: no need to wait for the
// next scheduled refresh), until ctx ends.
func reloadOnHangup(ctx context.Context, hup chan os.Signal, idp *samlidp.Provider, log *slog.Logger) {
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			if err := idp.Reload(ctx); err != nil {
				log.Warn("SAML service provider metadata reloaded, with errors (the last good copy stays)", "err", err)
			} else {
				log.Info("SAML service provider metadata reloaded", "service_providers", idp.ServiceProviders())
			}
		}
	}
}
