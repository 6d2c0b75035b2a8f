package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/keystep/keystep/flows"
)

// AcquireLease takes or renews the lease name for holder until now+ttl in
// one conditional upsert: true if holder holds it now, false if another
// holder's lease runs past now.
func (o ops) AcquireLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (bool, error) {
	if name == "" || holder == "" || ttl <= 0 {
		return false, fmt.Errorf("acquire lease %q: %w: a lease needs a name, a holder and a positive ttl", name, flows.ErrInvalid)
	}
	n, err := o.execN(ctx, qAcquireLease, name, holder, unixNano(now.Add(ttl)), unixNano(now))
	if err != nil {
		return false, fmt.Errorf("acquire lease %q for %q: %w", name, holder, err)
	}
	return n > 0, nil
}

// ReleaseLease deletes holder's lease name; nothing if holder does not
// hold it.
func (o ops) ReleaseLease(ctx context.Context, name, holder string) error {
	if _, err := o.exec(ctx, qReleaseLease, name, holder); err != nil {
		return fmt.Errorf("release lease %q of %q: %w", name, holder, err)
	}
	return nil
}
