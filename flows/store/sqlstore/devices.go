package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/keystep/keystep/flows"
)

// CreateDevice stores a newly enrolled device; ErrConflict if its id is
// taken, ErrNotFound if its account does not exist.
func (o ops) CreateDevice(ctx context.Context, d flows.Device) error {
	switch {
	case d.ID == "" || d.AccountID == "":
		return fmt.Errorf("create device: %w: device needs an id and an account", flows.ErrInvalid)
	case d.State != flows.DeviceActive && d.State != flows.DeviceUnregistered:
		return fmt.Errorf("create device %q: %w: unknown state %q", d.ID, flows.ErrInvalid, d.State)
	}
	n, err := o.execN(ctx, qCreateDevice, d.ID, d.AccountID, d.Name, d.PublicKey, d.PushRoute, string(d.State),
		unixNano(d.UnregisteredAt), d.UnregisterReason, unixNano(d.CreatedAt), unixNano(d.LastSeenAt),
		d.EnrolledInvitation)
	switch {
	case (err == nil && n == 0) || o.s.d.isUnique(err):
		return fmt.Errorf("create device %q: %w", d.ID, flows.ErrConflict)
	case o.s.d.isForeignKey(err):
		return fmt.Errorf("create device %q: account %q: %w", d.ID, d.AccountID, flows.ErrNotFound)
	case err != nil:
		return fmt.Errorf("create device %q: %w", d.ID, err)
	}
	return nil
}

func scanDevice(r scanner) (flows.Device, error) {
	var (
		d                      flows.Device
		state                  string
		unreg, created, seenAt int64
	)
	err := r.Scan(&d.ID, &d.AccountID, &d.Name, &d.PublicKey, &d.PushRoute, &state, &unreg, &d.UnregisterReason,
		&created, &seenAt, &d.EnrolledInvitation)
	if err != nil {
		return flows.Device{}, err
	}
	d.PublicKey = blob(d.PublicKey)
	d.State = flows.DeviceState(state)
	d.UnregisteredAt, d.CreatedAt, d.LastSeenAt = fromUnixNano(unreg), fromUnixNano(created), fromUnixNano(seenAt)
	return d, nil
}

// GetDevice returns a device by id.
func (o ops) GetDevice(ctx context.Context, id string) (flows.Device, error) {
	d, err := scanDevice(o.queryRow(ctx, qGetDevice, id))
	if err != nil {
		return flows.Device{}, fmt.Errorf("get device %q: %w", id, notFound(err))
	}
	return d, nil
}

// ListDevices returns an account's devices, oldest first (then by id).
func (o ops) ListDevices(ctx context.Context, accountID string) ([]flows.Device, error) {
	ds, err := queryAll(ctx, o, qListDevices, scanDevice, accountID)
	if err != nil {
		return nil, fmt.Errorf("list devices of account %q: %w", accountID, err)
	}
	return ds, nil
}

// UnregisterDevice marks an active device unregistered; ErrNotFound if no
// active device has that id.
func (o ops) UnregisterDevice(ctx context.Context, id string, at time.Time, reason string) error {
	n, err := o.execN(ctx, qUnregisterDevice, unixNano(at), reason, id)
	switch {
	case err != nil:
		return fmt.Errorf("unregister device %q: %w", id, err)
	case n == 0:
		return fmt.Errorf("unregister device %q: no active device: %w", id, flows.ErrNotFound)
	}
	return nil
}

// UpdateDevicePushRoute replaces an active device's push route; ErrNotFound
// if no active device has that id.
func (o ops) UpdateDevicePushRoute(ctx context.Context, id, route string) error {
	n, err := o.execN(ctx, qUpdateDevicePushRoute, route, id)
	switch {
	case err != nil:
		return fmt.Errorf("update push route of device %q: %w", id, err)
	case n == 0:
		return fmt.Errorf("update push route of device %q: no active device: %w", id, flows.ErrNotFound)
	}
	return nil
}
