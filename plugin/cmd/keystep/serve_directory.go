package main

import (
	"context"
	"log/slog"
	"strings"
	"sync"

	"github.com/keystep/keystep/directory"
	"github.com/keystep/keystep/flows"
)

// newDirectorySources builds the configured directory sources on svc and
// adds them to the live check (which flows.New was given before, since the
// sources need the service).
func newDirectorySources(cfgs []directory.SourceConfig, svc *flows.Service, checker *directory.LiveChecker, log *slog.Logger) ([]*directory.Source, error) {
	sources := make([]*directory.Source, 0, len(cfgs))
	for _, sc := range cfgs {
		src, err := directory.NewSource(sc, svc, directory.WithLogger(log))
		if err != nil {
			return nil, err
		}
		checker.Add(src)
		sources = append(sources, src)
	}
	return sources, nil
}

// logDirectorySources writes one line per source: where it is, never the
// bind password.
func logDirectorySources(sources []*directory.Source, log *slog.Logger) {
	for _, src := range sources {
		c := src.Config()
		bind := c.BindDN
		if c.ClientCert != nil {
			bind = "client certificate (SASL EXTERNAL)"
		}
		attrs := []any{"name", c.Name, "urls", strings.Join(c.URLs, " "), "base_dn", c.BaseDN, "bind", bind,
			"incremental", c.Incremental, "full_sync_interval", c.FullSyncInterval, "live_check", c.LiveCheck.Enabled}
		if c.Group != "" {
			attrs = append(attrs, "group", c.Group)
		}
		if c.LiveCheck.Enabled {
			attrs = append(attrs, "fail_open", c.LiveCheck.FailOpen)
		}
		log.Info("directory source", attrs...)
	}
}

// runDirectory runs each source's sync (Source.Run) until ctx ends or the
// returned stop is called; stop waits for them to end.
func runDirectory(ctx context.Context, sources []*directory.Source) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, src := range sources {
		wg.Go(func() { _ = src.Run(ctx, directory.RunHooks{}) }) // it returns ctx's error
	}
	return func() {
		cancel()
		wg.Wait()
	}
}
