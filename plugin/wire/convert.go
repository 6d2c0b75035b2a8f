package wire

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/keystep/keystep/flows"
	pb "github.com/keystep/keystep/plugin/proto/keystep/v1"
	"github.com/keystep/keystep/plugin/step"
)

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func tm(t *timestamppb.Timestamp) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.AsTime().UTC()
}

func methods(ms []flows.Method) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = string(m)
	}
	return out
}

func flowsMethods(ms []string) []flows.Method {
	if len(ms) == 0 {
		return nil
	}
	out := make([]flows.Method, len(ms))
	for i, m := range ms {
		out[i] = flows.Method(m)
	}
	return out
}

// BeginRequestToPB converts a BeginRequest.
func BeginRequestToPB(r step.BeginRequest) *pb.BeginRequest {
	return &pb.BeginRequest{AccountId: r.AccountID, Username: r.Username, Client: r.Client, Ip: r.IP,
		UserAgent: r.UserAgent, Methods: methods(r.Methods), BindingMessage: r.BindingMessage}
}

// BeginRequestFromPB converts a BeginRequest.
func BeginRequestFromPB(r *pb.BeginRequest) step.BeginRequest {
	return step.BeginRequest{AccountID: r.GetAccountId(), Username: r.GetUsername(), Client: r.GetClient(), IP: r.GetIp(),
		UserAgent: r.GetUserAgent(), Methods: flowsMethods(r.GetMethods()), BindingMessage: r.GetBindingMessage()}
}

// TransactionToPB converts a Transaction.
func TransactionToPB(t step.Transaction) *pb.Transaction {
	return &pb.Transaction{Id: t.ID, ExpiresAt: ts(t.ExpiresAt), Number: t.Number, QrPayload: t.QRPayload, QrPng: t.QRPNG,
		Fallbacks: methods(t.Fallbacks), Methods: methods(t.Methods), PushSuppressed: t.PushSuppressed}
}

// TransactionFromPB converts a Transaction.
func TransactionFromPB(t *pb.Transaction) step.Transaction {
	return step.Transaction{ID: t.GetId(), ExpiresAt: tm(t.GetExpiresAt()), Number: t.GetNumber(), QRPayload: t.GetQrPayload(),
		QRPNG: t.GetQrPng(), Fallbacks: flowsMethods(t.GetFallbacks()), Methods: flowsMethods(t.GetMethods()),
		PushSuppressed: t.GetPushSuppressed()}
}

// ResultToPB converts a Result.
func ResultToPB(r step.Result) *pb.Result {
	return &pb.Result{Id: r.ID, AccountId: r.AccountID, Status: string(r.Status), Method: string(r.Method),
		DecidedAt: ts(r.DecidedAt), Reason: r.Reason, FraudReport: r.FraudReport}
}

// ResultFromPB converts a Result.
func ResultFromPB(r *pb.Result) step.Result {
	return step.Result{ID: r.GetId(), AccountID: r.GetAccountId(), Status: flows.SignInStatus(r.GetStatus()),
		Method: flows.Method(r.GetMethod()), DecidedAt: tm(r.GetDecidedAt()), Reason: r.GetReason(), FraudReport: r.GetFraudReport()}
}

// SentCodeToPB converts a SentCode.
func SentCodeToPB(c step.SentCode) *pb.SentCode {
	return &pb.SentCode{Channel: string(c.Channel), To: c.To, ExpiresAt: ts(c.ExpiresAt), ResendAfter: ts(c.ResendAfter)}
}

// SentCodeFromPB converts a SentCode.
func SentCodeFromPB(c *pb.SentCode) step.SentCode {
	return step.SentCode{Channel: flows.Method(c.GetChannel()), To: c.GetTo(), ExpiresAt: tm(c.GetExpiresAt()),
		ResendAfter: tm(c.GetResendAfter())}
}

// AccountRefToPB converts an AccountRef.
func AccountRefToPB(r step.AccountRef) *pb.AccountRef {
	return &pb.AccountRef{AccountId: r.AccountID, Username: r.Username}
}

// AccountRefFromPB converts an AccountRef.
func AccountRefFromPB(r *pb.AccountRef) step.AccountRef {
	return step.AccountRef{AccountID: r.GetAccountId(), Username: r.GetUsername()}
}

// AccountToPB converts an Account.
func AccountToPB(a step.Account) *pb.Account {
	return &pb.Account{Id: a.ID, Username: a.Username, Email: a.Email, DisplayName: a.DisplayName, State: string(a.State),
		StateSource: string(a.StateSource), StateReason: a.StateReason, Devices: int32(a.Devices)}
}

// AccountFromPB converts an Account.
func AccountFromPB(a *pb.Account) step.Account {
	return step.Account{ID: a.GetId(), Username: a.GetUsername(), Email: a.GetEmail(), DisplayName: a.GetDisplayName(),
		State: flows.AccountState(a.GetState()), StateSource: flows.StateSource(a.GetStateSource()), StateReason: a.GetStateReason(),
		Devices: int(a.GetDevices())}
}

// InvitationToPB converts an Invitation.
func InvitationToPB(i step.Invitation) *pb.Invitation {
	return &pb.Invitation{Link: i.Link, ExpiresAt: ts(i.ExpiresAt)}
}

// InvitationFromPB converts an Invitation.
func InvitationFromPB(i *pb.Invitation) step.Invitation {
	return step.Invitation{Link: i.GetLink(), ExpiresAt: tm(i.GetExpiresAt())}
}

// OverrideCodeToPB converts an OverrideCode.
func OverrideCodeToPB(c step.OverrideCode) *pb.OverrideCode {
	return &pb.OverrideCode{Code: c.Code, ExpiresAt: ts(c.ExpiresAt)}
}

// OverrideCodeFromPB converts an OverrideCode.
func OverrideCodeFromPB(c *pb.OverrideCode) step.OverrideCode {
	return step.OverrideCode{Code: c.GetCode(), ExpiresAt: tm(c.GetExpiresAt())}
}

// NewAccountToPB converts a NewAccount.
func NewAccountToPB(n step.NewAccount) *pb.NewAccount {
	return &pb.NewAccount{Username: n.Username, Email: n.Email, Phone: n.Phone, DisplayName: n.DisplayName}
}

// NewAccountFromPB converts a NewAccount.
func NewAccountFromPB(n *pb.NewAccount) step.NewAccount {
	return step.NewAccount{Username: n.GetUsername(), Email: n.GetEmail(), Phone: n.GetPhone(), DisplayName: n.GetDisplayName()}
}
