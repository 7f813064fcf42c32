package irctest

import (
	"testing"
	"time"
)

// TestStartWithServices: services answer once Start returns, and an account
// registers; the times are logged (atheme starts in well under a second).
func TestStartWithServices(t *testing.T) {
	start := time.Now()
	s := Start(t, Options{Services: true})
	started := time.Since(start)
	s.RegisterAccount(t, "someone", "a-password")
	t.Logf("InspIRCd and atheme-services up and linked in %v; an account registered in %v",
		started.Round(time.Millisecond), (time.Since(start) - started).Round(time.Millisecond))
}

func TestParseRawLine(t *testing.T) {
	l := parseRawLine("@time=x :NickServ!NickServ@services.test NOTICE me :hello  there")
	if l.source != "NickServ!NickServ@services.test" || l.nick() != "NickServ" || l.command != "NOTICE" ||
		len(l.params) != 2 || l.params[0] != "me" || l.trailing() != "hello  there" {
		t.Fatalf("%+v", l)
	}
	if l := parseRawLine("PING :abc"); l.command != "PING" || l.trailing() != "abc" || l.source != "" {
		t.Fatalf("%+v", l)
	}
}
