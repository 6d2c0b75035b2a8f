// Package accounts finds the account a federation request names, the same
// way for every protocol.
package accounts

import (
	"context"
	"errors"
	"fmt"

	"github.com/keystep/keystep/flows"
)

// ErrUnknown is returned for a name that matches no account. It does not
// say why (no such account, or a lookalike of one).
var ErrUnknown = errors.New("no account has this name")

// Find returns the account with id value (byID) or username value. A
// username matches only up to the case of ASCII letters: the store folds
// names with Unicode lower-casing, which maps the Kelvin sign to "k", and a
// lookalike must name nobody.
func Find(ctx context.Context, store flows.Store, byID bool, value string) (flows.Account, error) {
	var a flows.Account
	var err error
	if byID {
		a, err = store.GetAccount(ctx, value)
	} else {
		a, err = store.GetAccountByUsername(ctx, value)
	}
	if errors.Is(err, flows.ErrNotFound) || errors.Is(err, flows.ErrInvalid) {
		return flows.Account{}, ErrUnknown
	}
	if err != nil {
		return flows.Account{}, fmt.Errorf("account: %w", err)
	}
	if !byID && !ASCIIFoldEqual(a.Username, value) {
		return flows.Account{}, ErrUnknown
	}
	return a, nil
}

// ASCIIFoldEqual compares two names ignoring only the case of ASCII letters.
func ASCIIFoldEqual(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range len(a) {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
