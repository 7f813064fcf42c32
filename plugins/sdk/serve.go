package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/plugins/proto"
)

// Handshake is the go-plugin handshake of API version 1; the host uses the
// same values (plugins/proto).
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  proto.ProtocolVersion,
	MagicCookieKey:   proto.MagicCookieKey,
	MagicCookieValue: proto.MagicCookieValue,
}

// Plugin is what a plugin process runs: the low-level side of the Bridge
// service, for plugins that are no bridgev2 bridge (Serve runs a bridgev2
// NetworkConnector as one). Events are handed over one at a time, in the
// order of the plugin's queue, each transaction's typing notifications and
// receipts after its events (Type.Class EphemeralEventType, no ID or
// sender, as appservices receive them); an error asks the host for the
// transaction again later.
type Plugin interface {
	Describe() Info
	// Start is called once, with the homeserver's side and the plugin's
	// configuration, before any event.
	Start(ctx context.Context, env *Env) error
	Stop(ctx context.Context) error
	HandleEvent(ctx context.Context, ev *event.Event) error
}

// Info describes a plugin (Bridge.Describe).
type Info struct {
	Network, Name, Version string
	Capabilities           []string
}

// Env is what the homeserver hands a plugin at Start.
type Env struct {
	Host                 *Host
	ServerName           string
	BotUserID            id.UserID
	GhostUserRegex       string
	GhostLocalpartPrefix string
	// Config is the plugin's block of the homeserver config, as JSON.
	Config  json.RawMessage
	DataDir string
	// DatabaseURL, when set, is the PostgreSQL database for the plugin's
	// own tables, in the schema DatabaseSchema; otherwise the plugin keeps
	// them in SQLite under DataDir.
	DatabaseURL, DatabaseSchema string
	// DefaultRoomVersion is the version of rooms created without one.
	DefaultRoomVersion id.RoomVersion
	// MaxUploadBytes bounds one media upload (0: unknown).
	MaxUploadBytes int64
	// Name is the plugin's name in the homeserver's configuration.
	Name string
	// Logger writes to the host's log, at the record's level.
	Logger *slog.Logger
}

// ServePlugin runs p as a plugin of the homeserver that started this
// process, and never returns (go-plugin exits the process when the host
// ends it). A binary started by hand, without the handshake cookie, prints
// a notice and exits.
func ServePlugin(p Plugin) {
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake,
		VersionedPlugins: map[int]plugin.PluginSet{
			proto.ProtocolVersion: {proto.PluginName: &bridgePlugin{impl: p}},
		},
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			return grpc.NewServer(append(opts, grpc.MaxRecvMsgSize(proto.MaxMessageBytes))...)
		},
	})
}

// logOut is the process's stderr as it was before go-plugin's Serve
// redirected os.Stderr (to its stdio stream, which the host discards).
var logOut = os.Stderr

// Logger is a logger whose records the host logs at their level: hclog
// JSON lines on the plugin's real stderr, which go-plugin on the host side
// parses.
func Logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(logOut, &slog.HandlerOptions{Level: slog.LevelDebug,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			// hclog's field names.
			switch a.Key {
			case slog.TimeKey:
				return slog.Attr{} // the host stamps the time
			case slog.LevelKey:
				a.Key, a.Value = "@level", slog.StringValue(strings.ToLower(a.Value.String()))
			case slog.MessageKey:
				a.Key = "@message"
			}
			return a
		}}))
}

// bridgePlugin is the plugin side of go-plugin's GRPCPlugin; the host has
// its own (plugins/host), which only dials.
type bridgePlugin struct {
	plugin.NetRPCUnsupportedPlugin
	impl Plugin
}

var _ plugin.GRPCPlugin = (*bridgePlugin)(nil)

func (b *bridgePlugin) GRPCServer(broker *plugin.GRPCBroker, s *grpc.Server) error {
	proto.RegisterBridgeServer(s, &bridgeServer{impl: b.impl, broker: broker})
	return nil
}

func (b *bridgePlugin) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return nil, errors.New("sdk: a plugin does not dial a plugin")
}

type bridgeServer struct {
	proto.UnimplementedBridgeServer
	impl   Plugin
	broker *plugin.GRPCBroker

	mu      sync.Mutex
	started bool
	hostCC  *grpc.ClientConn
}

func (s *bridgeServer) Describe(context.Context, *proto.DescribeRequest) (*proto.DescribeResponse, error) {
	info := s.impl.Describe()
	return &proto.DescribeResponse{Network: info.Network, Name: info.Name, Version: info.Version,
		Capabilities: info.Capabilities}, nil
}

func (s *bridgeServer) Start(ctx context.Context, req *proto.StartRequest) (*proto.StartResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return nil, errors.New("sdk: Start called twice")
	}
	cc, err := s.broker.DialWithOptions(req.HostBrokerId,
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(proto.MaxMessageBytes)))
	if err != nil {
		return nil, fmt.Errorf("sdk: dialing MatrixHost: %w", err)
	}
	env := &Env{
		Host:                 NewHost(proto.NewMatrixHostClient(cc)),
		ServerName:           req.ServerName,
		BotUserID:            id.UserID(req.BotUserId),
		GhostUserRegex:       req.GhostUserRegex,
		GhostLocalpartPrefix: req.GhostLocalpartPrefix,
		Config:               json.RawMessage(req.Config),
		DataDir:              req.DataDir,
		DatabaseURL:          req.DatabaseUrl,
		DatabaseSchema:       req.DatabaseSchema,
		DefaultRoomVersion:   id.RoomVersion(req.DefaultRoomVersion),
		MaxUploadBytes:       req.MaxUploadBytes,
		Name:                 req.Name,
		Logger:               Logger(),
	}
	if err := s.impl.Start(ctx, env); err != nil {
		_ = cc.Close()
		return nil, err
	}
	s.started, s.hostCC = true, cc
	return &proto.StartResponse{}, nil
}

func (s *bridgeServer) Stop(ctx context.Context, _ *proto.StopRequest) (*proto.StopResponse, error) {
	err := s.impl.Stop(ctx)
	s.mu.Lock()
	if s.hostCC != nil {
		_ = s.hostCC.Close()
		s.hostCC = nil
	}
	s.mu.Unlock()
	return &proto.StopResponse{}, err
}

// Events handles the host's transactions in order and acknowledges each.
func (s *bridgeServer) Events(stream grpc.BidiStreamingServer[proto.Transaction, proto.Ack]) error {
	ctx := stream.Context()
	for {
		txn, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		ack := &proto.Ack{TransactionId: txn.Id}
		for _, pe := range txn.Events {
			if err := s.impl.HandleEvent(ctx, EventFromProto(pe)); err != nil {
				ack.Error = err.Error()
				break
			}
		}
		for _, pe := range txn.Ephemeral {
			if ack.Error != "" {
				break
			}
			if err := s.impl.HandleEvent(ctx, ephemeralFromHost(pe)); err != nil {
				ack.Error = err.Error()
			}
		}
		if err := stream.Send(ack); err != nil {
			return err
		}
	}
}

// EventFromProto turns a queued event into mautrix's type, as an
// appservice's transaction events are: content raw (VeryRaw, Raw) and
// parsed for the types mautrix knows.
func EventFromProto(pe *proto.Event) *event.Event { return eventFromHost(pe) }
