// Package irctest runs the real IRC server that the IRC client
// (bridges/irc/ircconn) and bridge (internal/e2eirc) tests talk to: a
// throwaway InspIRCd 3 on a free loopback port, and, when a test needs
// accounts, atheme-services linked to it, so that SASL PLAIN works against
// real services. Both come from the Debian packages (inspircd,
// atheme-services; .ci/run installs them); without them the tests skip, or
// fail when TRIBUTARY_REQUIRE_IRC=1.
//
// Everything lives in the test's temp dir: the configs (the embedded files
// with ports and paths filled in), the logs and atheme's database. The
// processes are the test's children and are stopped when it ends.
//
// # How the services link is configured
//
// InspIRCd (inspircd.conf, plus inspircd-services.conf with Services)
// listens for clients on one loopback port and, with Services, for server
// links on a second one, accepting only the server services.test from
// 127.0.0.1 with a shared password (<link>), which it trusts as a U-line
// (<uline>) and sends SASL to (<sasl target>); the modules spanningtree,
// services_account and sasl carry the link, the accounts and AUTHENTICATE.
// atheme-services (atheme.conf) connects to that port as services.test
// (its uplink block) speaking protocol/inspircd, and serves NickServ
// (nickserv/main, nickserv/register: REGISTER without e-mail verification)
// and SaslServ (saslserv/main, saslserv/plain), with an opensex flat-file
// database in the temp dir. Start returns once NickServ has answered a
// client: by then atheme's burst (its clients and its SASL mechanisms) has
// been processed, so SASL works from the first connection on.
//
// # The files, and running them by hand
//
//   - inspircd.conf: InspIRCd 3 (Debian package inspircd) on loopback with
//     the IRCv3 modules the bridge uses, chanhistory, monitor and an
//     operator (admin/adminpw). Placeholders @PORT@ (clients) and @DIR@ (pid
//     and log files).
//   - inspircd-services.conf: appended for services; @LINKPORT@ (server
//     links) and @LINKPASS@.
//   - atheme.conf: atheme-services 7.2 (Debian package atheme-services);
//     @LINKPORT@ and @LINKPASS@, the same values.
//
// With the placeholders filled in:
//
//	/usr/sbin/inspircd --config=inspircd.conf --runasroot --nofork
//	/usr/bin/atheme-services -n -c atheme.conf -D DIR -l DIR/atheme.log -p DIR/atheme.pid
//
// (InspIRCd refuses root without --runasroot; atheme does not mind it.)
// Checked on this machine: Start without services returns in about 30 ms;
// atheme links in a few more ("finished synching with uplink (0 ms)" in its
// output). What costs time is InspIRCd completing a client's registration,
// which it does on a once-a-second timer: Start with services (its waiting
// client) and each RegisterAccount take about a second.
//
// irctest imports nothing of the module, so that ircconn's own tests can use
// it; the little IRC it speaks itself (to wait for services and to register
// accounts) is raw lines.
package irctest

import (
	"bufio"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// EnvRequire, set to 1 (as .ci/run does), turns "InspIRCd (or
// atheme-services) is not installed" from a skip into a failure.
const EnvRequire = "TRIBUTARY_REQUIRE_IRC"

var (
	//go:embed inspircd.conf
	inspircdConf string
	//go:embed inspircd-services.conf
	inspircdServicesConf string
	//go:embed atheme.conf
	athemeConf string
)

// linkPassword is the services link's password, both ways: only loopback
// connections can use it.
const linkPassword = "irctest-link"

// startTimeout bounds each wait for a server (its port, the services link).
const startTimeout = 30 * time.Second

// Options choose what Start runs besides InspIRCd.
type Options struct {
	// Services links atheme-services to InspIRCd: NickServ and SaslServ,
	// so that RegisterAccount and SASL PLAIN work.
	Services bool
}

// Server is a running InspIRCd (with services, if asked for).
type Server struct {
	// Addr is the client port, host:port on 127.0.0.1.
	Addr string
	// Dir holds the configs, logs and the services' database.
	Dir      string
	services bool
}

// Start runs InspIRCd, and atheme-services with opts.Services, for the
// test, and returns once clients can connect (and services answer).
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	inspBin := lookBin(t, "InspIRCd", "inspircd", "/usr/sbin/inspircd", "inspircd")
	var athemeBin string
	if opts.Services {
		athemeBin = lookBin(t, "atheme-services", "atheme-services", "/usr/bin/atheme-services", "atheme-services")
	}
	dir := t.TempDir()
	port := freePort(t)
	s := &Server{Addr: net.JoinHostPort("127.0.0.1", port), Dir: dir, services: opts.Services}
	vars := []string{"@PORT@", port, "@DIR@", dir, "@LINKPASS@", linkPassword}
	conf := inspircdConf
	if opts.Services {
		vars = append(vars, "@LINKPORT@", freePort(t))
		conf += inspircdServicesConf
	}
	fill := strings.NewReplacer(vars...)
	inspConf := writeFile(t, dir, "inspircd.conf", fill.Replace(conf))

	// InspIRCd says it is running once it has bound its ports.
	insp := startProcess(t, "InspIRCd", filepath.Join(dir, "inspircd.out"), "InspIRCd is now running",
		inspBin, "--config="+inspConf, "--runasroot", "--nofork")
	select {
	case <-insp.ready:
	case <-insp.done:
		t.Fatalf("InspIRCd exited (%v) before it was running:\n%s", insp.err, insp.output())
	case <-time.After(startTimeout):
		t.Fatalf("InspIRCd is not running after %v:\n%s", startTimeout, insp.output())
	}
	c, err := net.DialTimeout("tcp", s.Addr, startTimeout)
	if err != nil {
		t.Fatalf("InspIRCd does not accept connections on %s: %v\n%s", s.Addr, err, insp.output())
	}
	c.Close()
	if !opts.Services {
		return s
	}

	athConf := writeFile(t, dir, "atheme.conf", fill.Replace(athemeConf))
	atheme := startProcess(t, "atheme-services", filepath.Join(dir, "atheme.out"), "",
		athemeBin, "-n", "-c", athConf, "-D", dir,
		"-l", filepath.Join(dir, "atheme.log"), "-p", filepath.Join(dir, "atheme.pid"))
	if err := waitServices(s.Addr, atheme); err != nil {
		t.Fatalf("services did not come up: %v\natheme-services:\n%s\nInspIRCd:\n%s",
			err, atheme.output(), readFile(filepath.Join(dir, "insp.log")))
	}
	return s
}

// RegisterAccount registers a NickServ account (named like the nick that
// registers it, as atheme wants) with the password, through a plain client
// that leaves again: the nick is free when it returns.
func (s *Server) RegisterAccount(t testing.TB, account, password string) {
	t.Helper()
	if !s.services {
		t.Fatal("irctest: RegisterAccount needs Options.Services")
	}
	c, err := dialRaw(s.Addr, account, time.Now().Add(startTimeout))
	if err != nil {
		t.Fatalf("registering %s: %v", account, err)
	}
	defer c.conn.Close()
	if err := c.send("PRIVMSG NickServ :REGISTER " + password + " irctest@example.test"); err != nil {
		t.Fatal(err)
	}
	answer, err := c.await(func(l rawLine) bool { return l.command == "NOTICE" && strings.EqualFold(l.nick(), "NickServ") })
	if err != nil {
		t.Fatalf("registering %s: %v", account, err)
	}
	if !strings.Contains(answer.trailing(), "is now registered") {
		t.Fatalf("registering %s: NickServ says %q", account, answer.trailing())
	}
	if err := c.quit(); err != nil {
		t.Fatalf("registering %s: %v", account, err)
	}
}

// lookBin finds a server binary (Debian installs these outside a user's
// PATH), or skips the test, or fails it under EnvRequire.
func lookBin(t testing.TB, what, name, debianPath, pkg string) string {
	t.Helper()
	if bin, err := exec.LookPath(name); err == nil {
		return bin
	}
	if _, err := os.Stat(debianPath); err == nil {
		return debianPath
	}
	if os.Getenv(EnvRequire) == "1" {
		t.Fatalf("%s is not installed (apt-get install %s) and %s=1", what, pkg, EnvRequire)
	}
	t.Skipf("%s is not installed (apt-get install %s; set %s=1 to fail instead)", what, pkg, EnvRequire)
	return ""
}

// freePort is a loopback port that was free a moment ago.
func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func readFile(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// process is a server run as the test's child, its output in a file.
type process struct {
	outPath string
	// ready is closed at the first output line containing the marker
	// given to startProcess.
	ready chan struct{}
	// done is closed once the process has exited and its output is all
	// in the file; err is then its exit status.
	done chan struct{}
	err  error
}

// startProcess runs bin; the test's cleanup stops it (SIGTERM, then
// SIGKILL after 10 s).
func startProcess(t testing.TB, name, outPath, readyMarker, bin string, args ...string) *process {
	t.Helper()
	out, err := os.Create(outPath)
	if err != nil {
		t.Fatal(err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		out.Close()
		pr.Close()
		pw.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	pw.Close() // the child has its own copy: EOF comes when it exits
	p := &process{outPath: outPath, ready: make(chan struct{}), done: make(chan struct{})}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		defer out.Close()
		defer pr.Close()
		var once sync.Once
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			_, _ = out.Write(append(sc.Bytes(), '\n'))
			if readyMarker != "" && strings.Contains(sc.Text(), readyMarker) {
				once.Do(func() { close(p.ready) })
			}
		}
		_, _ = io.Copy(out, pr) // a line too long for the scanner
	}()
	go func() {
		p.err = cmd.Wait()
		<-copied
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// output is what the process printed so far.
func (p *process) output() string { return readFile(p.outPath) }

// waitServices waits until NickServ is on the network (MONITOR tells when
// atheme's burst introduces it) and has answered a message: atheme's burst
// is then processed. It gives up when atheme exits.
func waitServices(addr string, atheme *process) error {
	c, err := dialRaw(addr, "svcwait", time.Now().Add(startTimeout))
	if err != nil {
		return err
	}
	finished := make(chan struct{})
	defer close(finished)
	go func() {
		select {
		case <-atheme.done:
			c.conn.Close() // ends the wait below
		case <-finished:
		}
	}()
	defer c.conn.Close()
	fail := func(err error) error {
		select {
		case <-atheme.done:
			return fmt.Errorf("atheme-services exited (%v)", atheme.err)
		default:
			return err
		}
	}
	if err := c.send("MONITOR + NickServ"); err != nil {
		return fail(err)
	}
	if _, err := c.await(func(l rawLine) bool {
		if l.command != "730" { // RPL_MONONLINE: nick!user@host,…
			return false
		}
		for _, target := range strings.Split(l.trailing(), ",") {
			if nick, _, _ := strings.Cut(target, "!"); strings.EqualFold(nick, "NickServ") {
				return true
			}
		}
		return false
	}); err != nil {
		return fail(fmt.Errorf("waiting for NickServ to come online: %w", err))
	}
	if err := c.send("PRIVMSG NickServ :HELP"); err != nil {
		return fail(err)
	}
	if _, err := c.await(func(l rawLine) bool { return l.command == "NOTICE" && strings.EqualFold(l.nick(), "NickServ") }); err != nil {
		return fail(fmt.Errorf("waiting for NickServ to answer: %w", err))
	}
	return fail(c.quit())
}

// rawClient is a registered client speaking raw lines (no capabilities).
type rawClient struct {
	conn net.Conn
	r    *bufio.Reader
}

// rawLine is a line from the server, tags dropped.
type rawLine struct {
	source, command string
	params          []string
}

func (l rawLine) nick() string {
	nick, _, _ := strings.Cut(l.source, "!")
	return nick
}

func (l rawLine) trailing() string {
	if len(l.params) == 0 {
		return ""
	}
	return l.params[len(l.params)-1]
}

func parseRawLine(s string) rawLine {
	var l rawLine
	if strings.HasPrefix(s, "@") {
		_, s, _ = strings.Cut(s, " ")
	}
	if strings.HasPrefix(s, ":") {
		l.source, s, _ = strings.Cut(s[1:], " ")
	}
	l.command, s, _ = strings.Cut(s, " ")
	for s != "" {
		if strings.HasPrefix(s, ":") {
			l.params = append(l.params, s[1:])
			break
		}
		var p string
		p, s, _ = strings.Cut(s, " ")
		if p != "" {
			l.params = append(l.params, p)
		}
	}
	return l
}

// dialRaw connects and registers as nick; every read and write after it
// fails past deadline.
func dialRaw(addr, nick string, deadline time.Time) (*rawClient, error) {
	conn, err := net.DialTimeout("tcp", addr, time.Until(deadline))
	if err != nil {
		return nil, err
	}
	_ = conn.SetDeadline(deadline)
	c := &rawClient{conn: conn, r: bufio.NewReader(conn)}
	if err := c.send("NICK " + nick + "\r\nUSER " + nick + " 0 * :irctest"); err != nil {
		conn.Close()
		return nil, err
	}
	if _, err := c.await(func(l rawLine) bool { return l.command == "001" }); err != nil {
		conn.Close()
		return nil, fmt.Errorf("registering as %s: %w", nick, err)
	}
	return c, nil
}

func (c *rawClient) send(line string) error {
	_, err := io.WriteString(c.conn, line+"\r\n")
	return err
}

// await reads lines until one matches, answering PINGs; a nick in use or
// an ERROR from the server ends it with an error.
func (c *rawClient) await(pred func(rawLine) bool) (rawLine, error) {
	for {
		s, err := c.r.ReadString('\n')
		if err != nil {
			return rawLine{}, err
		}
		l := parseRawLine(strings.TrimRight(s, "\r\n"))
		switch l.command {
		case "PING":
			if err := c.send("PONG :" + l.trailing()); err != nil {
				return rawLine{}, err
			}
		case "433", "432": // ERR_NICKNAMEINUSE, ERR_ERRONEUSNICKNAME
			return rawLine{}, fmt.Errorf("nick refused: %s", strings.Join(l.params, " "))
		case "ERROR":
			return rawLine{}, fmt.Errorf("server closed the connection: %s", l.trailing())
		}
		if pred(l) {
			return l, nil
		}
	}
}

// quit leaves and reads to the end: once the server has closed the
// connection, it has processed the QUIT, and the nick is free.
func (c *rawClient) quit() error {
	if err := c.send("QUIT"); err != nil {
		return err
	}
	_, err := io.Copy(io.Discard, c.r)
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
