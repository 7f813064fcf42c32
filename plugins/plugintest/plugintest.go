package plugintest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/tributary-hs/tributary/plugins/proto"
)

// EchoPackage is the import path of the echo plugin.
const EchoPackage = "github.com/tributary-hs/tributary/plugins/plugintest/echoplugin"

// Build compiles the plugin main package pkg into t.TempDir() and returns
// the binary's path.
func Build(t testing.TB, pkg string) string {
	t.Helper()
	bin, err := BuildInto(t.TempDir(), pkg)
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// BuildInto compiles the plugin main package pkg into dir (for a binary
// shared by the tests of a package: TestMain's temporary directory).
func BuildInto(dir, pkg string) (string, error) {
	bin := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-tags", "goolm", "-o", bin, pkg)
	cmd.Env = os.Environ()
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building %s: %w\n%s", pkg, err, out)
	}
	return bin, nil
}

// FakeHost is a MatrixHost that accepts every call and records it: each
// sent event (SendEvent, SendState) is also put on Sent.
type FakeHost struct {
	proto.UnimplementedMatrixHostServer
	Sent chan *proto.SendEventRequest

	mu         sync.Mutex
	registered []string
	n          int
}

// NewFakeHost returns a FakeHost whose Sent holds up to 100 events.
func NewFakeHost() *FakeHost { return &FakeHost{Sent: make(chan *proto.SendEventRequest, 100)} }

var _ proto.MatrixHostServer = (*FakeHost)(nil)

// Registered lists the users EnsureRegistered was called for.
func (f *FakeHost) Registered() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.registered...)
}

func (f *FakeHost) EnsureRegistered(_ context.Context, req *proto.EnsureRegisteredRequest) (*proto.EnsureRegisteredResponse, error) {
	f.mu.Lock()
	f.registered = append(f.registered, req.UserId)
	f.mu.Unlock()
	return &proto.EnsureRegisteredResponse{}, nil
}

func (f *FakeHost) SendEvent(_ context.Context, req *proto.SendEventRequest) (*proto.SendEventResponse, error) {
	f.Sent <- req
	return &proto.SendEventResponse{EventId: f.nextID()}, nil
}

func (f *FakeHost) SendState(_ context.Context, req *proto.SendStateRequest) (*proto.SendEventResponse, error) {
	f.Sent <- &proto.SendEventRequest{RoomId: req.RoomId, UserId: req.UserId, Type: req.Type,
		Content: req.Content, Timestamp: req.Timestamp}
	return &proto.SendEventResponse{EventId: f.nextID()}, nil
}

func (f *FakeHost) SetMembership(context.Context, *proto.SetMembershipRequest) (*proto.SendEventResponse, error) {
	return &proto.SendEventResponse{EventId: f.nextID()}, nil
}

func (f *FakeHost) SetProfile(context.Context, *proto.SetProfileRequest) (*proto.SetProfileResponse, error) {
	return &proto.SetProfileResponse{}, nil
}

func (f *FakeHost) nextID() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	return "$fake" + strconv.Itoa(f.n)
}
