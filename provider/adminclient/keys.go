package adminclient

import (
	"context"
	"net/http"
	"net/url"

	"github.com/keystep/keystep/provider/api"
)

// SigningKeys lists the signing keys of every use (ID tokens, SAML
// assertions).
func (c *Client) SigningKeys(ctx context.Context) (api.KeyList, error) {
	var out api.KeyList
	err := c.call(ctx, http.MethodGet, api.PathKeys, nil, nil, &out, 0)
	return out, wrap(err, "list signing keys")
}

// RotateKeys makes new signing keys of one use ("oidc", "saml") that sign
// from now; the old ones stay published until what they signed expires.
// use may be empty when the server signs for one use only.
func (c *Client) RotateKeys(ctx context.Context, use string) (api.KeyList, error) {
	var q url.Values
	if use != "" {
		q = url.Values{"use": {use}}
	}
	var out api.KeyList
	err := c.call(ctx, http.MethodPost, api.PathKeysRotate, q, struct{}{}, &out, 0)
	return out, wrap(err, "rotate signing keys")
}
