package host

import (
	"context"
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc/status"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/plugin/pluginapi"
	pb "github.com/keystep/keystep/plugin/proto/keystep/v1"
	"github.com/keystep/keystep/plugin/step"
	"github.com/keystep/keystep/plugin/wire"
)

// Health is the plugin's answer to a health check.
type Health struct {
	Serving bool
	Version string // the keystep binary's version
	// DeviceAPIURL is where phones reach the plugin (its device API);
	// it may change when the plugin restarts unless the configuration
	// fixes the listen address or the public URL.
	DeviceAPIURL string
}

// Health asks the plugin whether it can serve (safe to repeat after a
// restart).
func (c *Client) Health(ctx context.Context) (Health, error) {
	hs, err := unary(ctx, c, true, func(ctx context.Context, a *pluginapi.Clients) (*pb.HealthStatus, error) {
		return a.Health.Check(ctx, &pb.HealthRequest{})
	})
	if err != nil {
		return Health{}, err
	}
	return Health{Serving: hs.GetServing(), Version: hs.GetVersion(), DeviceAPIURL: hs.GetDeviceApiUrl()}, nil
}

// unary is call with the plugin's errors turned back into flows' errors.
// The SDK's own errors (ErrPluginExited, ErrClosed, a failed restart),
// which wrap a status, are returned as they are: FromStatus would replace
// them by the status they wrap.
func unary[T any](ctx context.Context, c *Client, idempotent bool, fn func(context.Context, *pluginapi.Clients) (T, error)) (T, error) {
	out, err := call(ctx, c, idempotent, fn)
	if _, answered := err.(interface{ GRPCStatus() *status.Status }); answered {
		return out, wire.FromStatus(err)
	}
	return out, err
}

// Begin implements step.Step. It is not repeated after a restart unless
// the request never reached the plugin.
func (c *Client) Begin(ctx context.Context, r step.BeginRequest) (step.Transaction, error) {
	t, err := unary(ctx, c, false, func(ctx context.Context, a *pluginapi.Clients) (*pb.Transaction, error) {
		return a.Step.Begin(ctx, wire.BeginRequestToPB(r))
	})
	if err != nil {
		return step.Transaction{}, err
	}
	return wire.TransactionFromPB(t), nil
}

// awaitRestarts bounds the broken streams one Await resumes after.
const awaitRestarts = 5

// Await implements step.Step. If the plugin dies while it waits, the
// plugin is restarted and the wait goes on for the same sign-in (which
// lives in keystep's store), up to awaitRestarts times; progress may then
// see the current status again.
func (c *Client) Await(ctx context.Context, id string, progress func(step.Result)) (step.Result, error) {
	inst, err := c.instance(ctx)
	if err != nil {
		return step.Result{}, err
	}
	failures := 0
	for {
		res, done, err := c.await(ctx, inst, id, progress)
		if done {
			return res, err
		}
		if cerr := ctxError(ctx, err); cerr != nil {
			return step.Result{}, cerr
		}
		if !broken(inst, err) {
			return step.Result{}, wire.FromStatus(err)
		}
		if failures++; failures > awaitRestarts {
			return step.Result{}, fmt.Errorf("keystep plugin: Await broke %d times: %w", failures, err)
		}
		c.log.Warn("keystep plugin: Await broke; resuming after a restart", "id", id, "error", err)
		next, rerr := c.heal(ctx, inst, err)
		if rerr != nil {
			if ctx.Err() != nil {
				return step.Result{}, ctx.Err()
			}
			return step.Result{}, fmt.Errorf("%w (after: %w)", rerr, err)
		}
		inst = next
	}
}

// await runs one Await stream. done: the result (or error) is final; else
// err is the stream's failure and res the last status seen, if any.
func (c *Client) await(ctx context.Context, inst *instance, id string, progress func(step.Result)) (res step.Result, done bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := inst.api.Step.Await(ctx, &pb.AwaitRequest{Id: id})
	if err != nil {
		return res, false, err
	}
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			if res.ID != "" && res.Status.Final() {
				return res, true, nil
			}
			return res, true, fmt.Errorf("keystep plugin: Await %s ended before the sign-in was decided", id)
		}
		if err != nil {
			return res, false, err
		}
		res = wire.ResultFromPB(m)
		if progress != nil {
			progress(res)
		}
		if res.Status.Final() {
			return res, true, nil
		}
	}
}

// SendCode implements step.Step. It is not repeated after a restart
// unless the request never reached the plugin.
func (c *Client) SendCode(ctx context.Context, id string, channel flows.Method) (step.SentCode, error) {
	sc, err := unary(ctx, c, false, func(ctx context.Context, a *pluginapi.Clients) (*pb.SentCode, error) {
		return a.Step.SendCode(ctx, &pb.SendCodeRequest{Id: id, Channel: string(channel)})
	})
	if err != nil {
		return step.SentCode{}, err
	}
	return wire.SentCodeFromPB(sc), nil
}

// SubmitCode implements step.Step. It is not repeated after a restart
// unless the request never reached the plugin.
func (c *Client) SubmitCode(ctx context.Context, id, code, ip string) (step.Result, error) {
	return c.result(ctx, func(ctx context.Context, a *pluginapi.Clients) (*pb.Result, error) {
		return a.Step.SubmitCode(ctx, &pb.SubmitCodeRequest{Id: id, Code: code, Ip: ip})
	})
}

// Cancel implements step.Step. It is not repeated after a restart unless
// the request never reached the plugin.
func (c *Client) Cancel(ctx context.Context, id, reason string) (step.Result, error) {
	return c.result(ctx, func(ctx context.Context, a *pluginapi.Clients) (*pb.Result, error) {
		return a.Step.Cancel(ctx, &pb.CancelRequest{Id: id, Reason: reason})
	})
}

func (c *Client) result(ctx context.Context, fn func(context.Context, *pluginapi.Clients) (*pb.Result, error)) (step.Result, error) {
	r, err := unary(ctx, c, false, fn)
	if err != nil {
		return step.Result{}, err
	}
	return wire.ResultFromPB(r), nil
}

// GetAccount implements step.Accounts (safe to repeat after a restart).
func (c *Client) GetAccount(ctx context.Context, ref step.AccountRef) (step.Account, error) {
	return c.account(ctx, true, func(ctx context.Context, a *pluginapi.Clients) (*pb.Account, error) {
		return a.Accounts.Get(ctx, wire.AccountRefToPB(ref))
	})
}

// AddAccount implements step.Accounts. It is not repeated after a
// restart unless the request never reached the plugin.
func (c *Client) AddAccount(ctx context.Context, n step.NewAccount) (step.Account, error) {
	return c.account(ctx, false, func(ctx context.Context, a *pluginapi.Clients) (*pb.Account, error) {
		return a.Accounts.Add(ctx, wire.NewAccountToPB(n))
	})
}

// Invite implements step.Accounts. It is not repeated after a restart
// unless the request never reached the plugin.
func (c *Client) Invite(ctx context.Context, ref step.AccountRef) (step.Invitation, error) {
	inv, err := unary(ctx, c, false, func(ctx context.Context, a *pluginapi.Clients) (*pb.Invitation, error) {
		return a.Accounts.Invite(ctx, wire.AccountRefToPB(ref))
	})
	if err != nil {
		return step.Invitation{}, err
	}
	return wire.InvitationFromPB(inv), nil
}

// Suspend implements step.Accounts. It is not repeated after a restart
// unless the request never reached the plugin.
func (c *Client) Suspend(ctx context.Context, ref step.AccountRef, reason string) (step.Account, error) {
	return c.account(ctx, false, func(ctx context.Context, a *pluginapi.Clients) (*pb.Account, error) {
		return a.Accounts.Suspend(ctx, &pb.StateChange{Account: wire.AccountRefToPB(ref), Reason: reason})
	})
}

// Restore implements step.Accounts. It is not repeated after a restart
// unless the request never reached the plugin.
func (c *Client) Restore(ctx context.Context, ref step.AccountRef, reason string) (step.Account, error) {
	return c.account(ctx, false, func(ctx context.Context, a *pluginapi.Clients) (*pb.Account, error) {
		return a.Accounts.Restore(ctx, &pb.StateChange{Account: wire.AccountRefToPB(ref), Reason: reason})
	})
}

// Remove implements step.Accounts. It is not repeated after a restart
// unless the request never reached the plugin.
func (c *Client) Remove(ctx context.Context, ref step.AccountRef, reason string) (step.Account, error) {
	return c.account(ctx, false, func(ctx context.Context, a *pluginapi.Clients) (*pb.Account, error) {
		return a.Accounts.Remove(ctx, &pb.StateChange{Account: wire.AccountRefToPB(ref), Reason: reason})
	})
}

// Unregister implements step.Accounts. It is not repeated after a
// restart unless the request never reached the plugin.
func (c *Client) Unregister(ctx context.Context, ref step.AccountRef, deviceID, reason string) (step.Account, error) {
	return c.account(ctx, false, func(ctx context.Context, a *pluginapi.Clients) (*pb.Account, error) {
		return a.Accounts.Unregister(ctx, &pb.UnregisterRequest{Account: wire.AccountRefToPB(ref), DeviceId: deviceID, Reason: reason})
	})
}

// IssueOverride implements step.Accounts. It is not repeated after a
// restart unless the request never reached the plugin.
func (c *Client) IssueOverride(ctx context.Context, ref step.AccountRef, reason string) (step.OverrideCode, error) {
	oc, err := unary(ctx, c, false, func(ctx context.Context, a *pluginapi.Clients) (*pb.OverrideCode, error) {
		return a.Accounts.IssueOverride(ctx, &pb.OverrideRequest{Account: wire.AccountRefToPB(ref), Reason: reason})
	})
	if err != nil {
		return step.OverrideCode{}, err
	}
	return wire.OverrideCodeFromPB(oc), nil
}

func (c *Client) account(ctx context.Context, idempotent bool, fn func(context.Context, *pluginapi.Clients) (*pb.Account, error)) (step.Account, error) {
	a, err := unary(ctx, c, idempotent, fn)
	if err != nil {
		return step.Account{}, err
	}
	return wire.AccountFromPB(a), nil
}
