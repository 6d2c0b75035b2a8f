package server_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/flows/store/sqlite"
	pb "github.com/keystep/keystep/plugin/proto/keystep/v1"
	"github.com/keystep/keystep/plugin/server"
	"github.com/keystep/keystep/plugin/step"
)

// FuzzServices sends arbitrary request messages (any bytes, read as the
// message of the call the first byte picks) to the plugin's services over
// a real store. Invariants: no panic; every error is a gRPC status with a
// code, never Unknown or Internal for input the host chose; a call either
// answers or refuses, and an account is created only from a valid name.
func FuzzServices(f *testing.F) {
	seed := func(call byte, m proto.Message) {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(append([]byte{call}, b...))
	}
	seed(0, &pb.BeginRequest{Username: "alice", Client: "Payroll", Methods: []string{"push", "qr", "override"}})
	seed(0, &pb.BeginRequest{Username: "alice", AccountId: "x", Client: "two names"})
	seed(0, &pb.BeginRequest{Username: "alice", Client: "Payroll", BindingMessage: "ref\x00\n"})
	seed(0, &pb.BeginRequest{Username: "alice", Client: "Payroll", Methods: []string{"telepathy"}})
	seed(1, &pb.SendCodeRequest{Id: "nope", Channel: "email"})
	seed(2, &pb.SubmitCodeRequest{Id: "nope", Code: "12345678", Ip: "192.0.2.1"})
	seed(3, &pb.CancelRequest{Id: "nope", Reason: "gave up"})
	seed(4, &pb.NewAccount{Username: "bea", Email: "bea@example.com"})
	seed(4, &pb.NewAccount{Username: "\u212aim"})
	seed(5, &pb.AccountRef{Username: "alice"})
	seed(6, &pb.StateChange{Account: &pb.AccountRef{Username: "alice"}, Reason: "on leave"})
	seed(7, &pb.OverrideRequest{Account: &pb.AccountRef{Username: "alice"}})
	f.Add([]byte{0, 0xff, 0xff, 0xff})
	f.Add([]byte{})

	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(f.TempDir(), "keystep.db"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	svc, err := flows.New(st, flows.Config{Origin: origin, CodeConfig: flows.CodeConfig{CodeKey: codeKey}})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(svc.Close)
	if _, err := svc.AddAccount(ctx, "admin", flows.NewAccount{Username: "alice", Email: "alice@example.com"}); err != nil {
		f.Fatal(err)
	}
	local := &step.Local{Flows: svc, Actor: "fuzz"}
	s := server.New(local, local, nil)

	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		body := data[1:]
		var err error
		switch data[0] % 8 {
		case 0:
			m := &pb.BeginRequest{}
			if proto.Unmarshal(body, m) != nil {
				return
			}
			_, err = s.Step.Begin(ctx, m)
		case 1:
			m := &pb.SendCodeRequest{}
			if proto.Unmarshal(body, m) != nil {
				return
			}
			_, err = s.Step.SendCode(ctx, m)
		case 2:
			m := &pb.SubmitCodeRequest{}
			if proto.Unmarshal(body, m) != nil {
				return
			}
			_, err = s.Step.SubmitCode(ctx, m)
		case 3:
			m := &pb.CancelRequest{}
			if proto.Unmarshal(body, m) != nil {
				return
			}
			_, err = s.Step.Cancel(ctx, m)
		case 4:
			m := &pb.NewAccount{}
			if proto.Unmarshal(body, m) != nil {
				return
			}
			var acc *pb.Account
			acc, err = s.Accounts.Add(ctx, m)
			if err == nil && (acc.GetUsername() == "" || acc.GetId() == "") {
				t.Fatalf("Add(%v) made an account without a name or id: %v", m, acc)
			}
		case 5:
			m := &pb.AccountRef{}
			if proto.Unmarshal(body, m) != nil {
				return
			}
			_, err = s.Accounts.Get(ctx, m)
		case 6:
			m := &pb.StateChange{}
			if proto.Unmarshal(body, m) != nil {
				return
			}
			_, err = s.Accounts.Suspend(ctx, m)
		case 7:
			m := &pb.OverrideRequest{}
			if proto.Unmarshal(body, m) != nil {
				return
			}
			_, err = s.Accounts.IssueOverride(ctx, m)
		}
		if err == nil {
			return
		}
		st, ok := status.FromError(err)
		if !ok {
			t.Fatalf("error is not a gRPC status: %v", err)
		}
		if st.Code() == codes.Unknown || (st.Code() == codes.Internal && !errors.Is(err, context.Canceled)) {
			t.Fatalf("call %d answered %s for input the host chose: %v", data[0]%8, st.Code(), st.Message())
		}
	})
}
