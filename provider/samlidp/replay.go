package samlidp

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/crewjam/saml"

	"github.com/keystep/keystep/flows"
)

// replayCache is the library's replay cache (it records LogoutRequest IDs)
// over the store's single-use nonces, so every instance shares it.
type replayCache struct{ p *Provider }

// Consume implements saml.AssertionReplayCache.
func (c replayCache) Consume(id string, expiresAt time.Time) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sum := sha256.Sum256([]byte(id))
	err := c.p.store().UseNonce(ctx, "saml:"+hex.EncodeToString(sum[:]), expiresAt)
	if errors.Is(err, flows.ErrReplay) {
		return fmt.Errorf("%w: %s", saml.ErrAssertionReplayed, err)
	}
	return err
}
