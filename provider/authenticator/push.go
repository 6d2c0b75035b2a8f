package authenticator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/provider/api"
)

// PushRouteResult is what one enrollment's server answered to a new push
// route.
type PushRouteResult struct {
	Enrollment Enrollment
	Err        error // nil: the server pushes to the new route from now on
}

// SetPushRoute tells every enrollment's server where this device's
// wake-up pushes go: "apns:<hex device token>", "fcm:<registration
// token>", or "" for none (the app then learns of requests only while its
// request stream is open). A malformed route is refused before any server
// is asked. It returns one result per enrollment, and an error naming each
// server that refused.
func (a *Authenticator) SetPushRoute(ctx context.Context, route string) ([]PushRouteResult, error) {
	if err := flows.CheckPushRoute(route); err != nil {
		return nil, fmt.Errorf("push route: %w", err)
	}
	es, err := a.Enrollments()
	if err != nil {
		return nil, err
	}
	if len(es) == 0 {
		return nil, errors.New("push route: no account is enrolled on this device")
	}
	body, err := json.Marshal(api.PushRoute{PushRoute: route})
	if err != nil {
		return nil, fmt.Errorf("push route: %w", err)
	}
	out := make([]PushRouteResult, 0, len(es))
	var errs []error
	for _, e := range es {
		var got api.PushRoute
		err := a.send(ctx, &e, e.Server, http.MethodPut, api.PathPushRoute, body, &got)
		if err == nil && got.PushRoute != route {
			err = fmt.Errorf("the server answered route %q, not the one sent", got.PushRoute)
		}
		if err != nil {
			err = fmt.Errorf("%s: push route: %w", e.Label(), err)
			errs = append(errs, err)
		}
		out = append(out, PushRouteResult{Enrollment: e, Err: err})
	}
	return out, errors.Join(errs...)
}
