package provider

import (
	"encoding/base64"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/provider/api"
)

// b64 is the encoding of binary values on the wire.
var b64 = base64.RawURLEncoding

func accountView(a flows.Account) api.AccountView {
	return api.AccountView{ID: a.ID, Username: a.Username, DisplayName: a.DisplayName, State: string(a.State)}
}

func signInRequest(s flows.SignIn) api.SignInRequest {
	return api.SignInRequest{
		ID: s.ID, Client: s.Client, IP: s.IP, UserAgent: s.UserAgent, Methods: methodStrings(s.Methods),
		Nonce: s.Nonce, CreatedAt: s.CreatedAt, ExpiresAt: s.ExpiresAt,
	}
}

func methodStrings(ms []flows.Method) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = string(m)
	}
	return out
}

func user(a flows.Account) api.User {
	return api.User{
		ID: a.ID, Username: a.Username, Email: a.Email, Phone: a.Phone, DisplayName: a.DisplayName,
		State: string(a.State), StateSource: string(a.StateSource), StateReason: a.StateReason,
		StateChangedAt: a.StateChangedAt, CreatedAt: a.CreatedAt,
	}
}

func device(d flows.Device) api.Device {
	return api.Device{
		ID: d.ID, Name: d.Name, State: string(d.State), CreatedAt: d.CreatedAt,
		UnregisteredAt: d.UnregisteredAt, UnregisterReason: d.UnregisterReason,
	}
}

func adminSignIn(s flows.SignIn) api.SignIn {
	return api.SignIn{
		ID: s.ID, AccountID: s.AccountID, Client: s.Client, Status: string(s.Status), Reason: s.Reason,
		DecidedBy: string(s.DecidedBy), DeviceID: s.DeviceID, FraudReport: s.FraudReport,
		CreatedAt: s.CreatedAt, ExpiresAt: s.ExpiresAt, DecidedAt: s.DecidedAt,
	}
}

func auditEvent(e flows.AuditEvent) api.AuditEvent {
	return api.AuditEvent{
		Seq: e.Seq, Time: e.Time, Actor: e.Actor, Action: e.Action, AccountID: e.AccountID,
		DeviceID: e.DeviceID, SignInID: e.SignInID, Detail: e.Detail,
		PrevHash: b64.EncodeToString(e.PrevHash), Hash: b64.EncodeToString(e.Hash),
	}
}
