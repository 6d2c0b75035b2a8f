package adminclient

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"github.com/keystep/keystep/provider/api"
)

// DirectoryStatus returns the sync status of every directory source.
func (c *Client) DirectoryStatus(ctx context.Context) (api.DirectoryStatusList, error) {
	var out api.DirectoryStatusList
	err := c.call(ctx, http.MethodGet, api.PathDirectory, nil, nil, &out, 0)
	return out, wrap(err, "directory status")
}

// TriggerDirectorySync asks the server to start a full sync of a directory
// source now, letting up to confirmRemovals removals through the guard; it
// answers at once (DirectoryStatus shows the result).
func (c *Client) TriggerDirectorySync(ctx context.Context, source string, confirmRemovals int) (api.DirectorySyncStarted, error) {
	var out api.DirectorySyncStarted
	p := strings.Replace(api.PathDirectorySync, "{source}", url.PathEscape(source), 1)
	err := c.call(ctx, http.MethodPost, p, nil, api.DirectorySync{ConfirmRemovals: confirmRemovals}, &out, 0)
	return out, wrap(err, "sync directory %q", source)
}
