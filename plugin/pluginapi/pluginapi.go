// Package pluginapi is what the keystep binary (serving the plugin) and the
// host SDK (launching it) agree on for hashicorp/go-plugin: the handshake,
// the plugin's name, the protocol versions and the gRPC plugin that binds
// the v1 services.
package pluginapi

import (
	"context"
	"errors"

	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	pb "github.com/keystep/keystep/plugin/proto/keystep/v1"
)

// The magic cookie: when the keystep binary finds it in its environment it
// serves the plugin, whatever its arguments. It is a guard against running
// the binary as a plugin by mistake, not a secret.
const (
	MagicCookieKey   = "KEYSTEP_PLUGIN"
	MagicCookieValue = "passwordless-step"
)

// ConfigFDEnv names the file descriptor (3, the first of exec.Cmd's
// ExtraFiles) from which the plugin reads its configuration (keystep's
// YAML configuration file, as text) to the end. The SDK passes the
// configuration this way, so that its secrets are in no environment.
const ConfigFDEnv = "KEYSTEP_PLUGIN_CONFIG_FD"

// ConfigEnv is the environment variable through which a host may pass the
// plugin its configuration (keystep's YAML configuration file, as text).
const ConfigEnv = "KEYSTEP_PLUGIN_CONFIG"

// PluginName is the name of the one plugin the binary serves.
const PluginName = "step"

// ProtocolV1 is the first version of the contract
// (plugin/proto/keystep/v1). A later version is added next to it in
// VersionedPlugins; version 1 stays served.
const ProtocolV1 = 1

// Handshake is the go-plugin handshake; ProtocolVersion is unused because
// both sides give VersionedPlugins.
var Handshake = goplugin.HandshakeConfig{
	ProtocolVersion:  ProtocolV1,
	MagicCookieKey:   MagicCookieKey,
	MagicCookieValue: MagicCookieValue,
}

// Services are the v1 servers the plugin side implements.
type Services struct {
	Step     pb.StepServer
	Accounts pb.AccountsServer
	Health   pb.HealthServer
}

// Clients are the v1 clients the host side gets.
type Clients struct {
	Step     pb.StepClient
	Accounts pb.AccountsClient
	Health   pb.HealthClient
	Conn     *grpc.ClientConn
}

// V1 is the go-plugin plugin of protocol version 1. The plugin side sets
// Impl; the host side leaves it nil and gets *Clients from Dispense.
type V1 struct {
	goplugin.NetRPCUnsupportedPlugin
	Impl *Services
}

// GRPCServer registers the v1 services.
func (p *V1) GRPCServer(_ *goplugin.GRPCBroker, s *grpc.Server) error {
	if p.Impl == nil {
		return errors.New("pluginapi: no services to serve")
	}
	pb.RegisterStepServer(s, p.Impl.Step)
	pb.RegisterAccountsServer(s, p.Impl.Accounts)
	pb.RegisterHealthServer(s, p.Impl.Health)
	return nil
}

// GRPCClient returns the v1 clients over the plugin's connection.
func (p *V1) GRPCClient(_ context.Context, _ *goplugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return &Clients{Step: pb.NewStepClient(c), Accounts: pb.NewAccountsClient(c), Health: pb.NewHealthClient(c), Conn: c}, nil
}

// Versions are the plugin sets by protocol version, for both sides'
// VersionedPlugins. impl is nil on the host side.
func Versions(impl *Services) map[int]goplugin.PluginSet {
	return map[int]goplugin.PluginSet{
		ProtocolV1: {PluginName: &V1{Impl: impl}},
	}
}
