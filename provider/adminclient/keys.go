package adminclient

import (
	"context"
	"net/http"

	"github.com/keystep/keystep/provider/api"
)

// SigningKeys lists the ID token signing keys.
func (c *Client) SigningKeys(ctx context.Context) (api.KeyList, error) {
	var out api.KeyList
	err := c.call(ctx, http.MethodGet, api.PathKeys, nil, nil, &out, 0)
	return out, wrap(err, "list signing keys")
}

// RotateKeys makes new signing keys that sign from now; the old ones stay
// published until the tokens they signed expire.
func (c *Client) RotateKeys(ctx context.Context) (api.KeyList, error) {
	var out api.KeyList
	err := c.call(ctx, http.MethodPost, api.PathKeysRotate, nil, struct{}{}, &out, 0)
	return out, wrap(err, "rotate signing keys")
}
