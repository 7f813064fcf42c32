package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"encoding/json/jsontext"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"
	"maunium.net/go/mautrix/appservice"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/appservice/registry"
	"github.com/tributary-hs/tributary/bridges/manager"
	"github.com/tributary-hs/tributary/core/config"
	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/importer"
	"github.com/tributary-hs/tributary/importer/discord"
	"github.com/tributary-hs/tributary/importer/slack"
)

// importIdentities are who `tributary import` acts as, per network: a
// configured plugin with the import's ghost prefix (the live bridge and the
// import then share ghosts and rooms), else an internal, silent appservice
// registration "import:<network>" with that exclusive namespace.
func importIdentities(cfg *config.Config) ([]registry.Internal, map[string]*importer.Identity, error) {
	var regs []registry.Internal
	ids := map[string]*importer.Identity{}
	for _, nn := range []struct {
		network string
		n       config.ImportNetwork
	}{{discord.Network, cfg.Imports.Discord}, {slack.Network, cfg.Imports.Slack}} {
		network, n := nn.network, nn.n
		var ident *importer.Identity
		for _, p := range cfg.Plugins {
			if p.GhostPrefix == n.GhostPrefix {
				ident = &importer.Identity{AppServiceID: manager.AppServiceID(p.Name),
					Bot: id.NewUserID(p.BotLocalpart, cfg.ServerName), ServerName: cfg.ServerName}
			}
		}
		if ident == nil {
			asID := "import:" + network
			as, hs := make([]byte, 32), make([]byte, 32)
			if _, err := rand.Read(as); err != nil {
				return nil, nil, err
			}
			_, _ = rand.Read(hs)
			regs = append(regs, registry.Internal{Source: "imports." + network, Silent: true, Reg: &appservice.Registration{
				ID: asID, AppToken: hex.EncodeToString(as), ServerToken: hex.EncodeToString(hs), SenderLocalpart: n.BotLocalpart,
				Namespaces: appservice.Namespaces{UserIDs: []appservice.Namespace{{Exclusive: true,
					Regex: "@" + regexp.QuoteMeta(n.GhostPrefix) + ".*:" + regexp.QuoteMeta(cfg.ServerName)}}},
			}})
			ident = &importer.Identity{AppServiceID: asID, Bot: id.NewUserID(n.BotLocalpart, cfg.ServerName),
				ServerName: cfg.ServerName}
		}
		ids[network] = ident
	}
	return regs, ids, nil
}

// The control socket's import operations: POST /v1/import/<op> with
// {"network": …, …}, each one call of importer.Local in the server (and
// POST /v1/import/upload?… with the file as the body), so that an import
// into a running server goes through its room writers and its notifier.

type importReq struct {
	Network  string                 `json:"network"`
	PortalID string                 `json:"portal_id,omitempty"`
	Cursor   string                 `json:"cursor,omitempty"`
	Meta     string                 `json:"meta,omitempty"`
	Create   *importer.CreatePortal `json:"create,omitempty"`
	Ghost    *importer.Ghost        `json:"ghost,omitempty"`
	User     id.UserID              `json:"user,omitempty"`
	RoomID   id.RoomID              `json:"room_id,omitempty"`
	RemoteID string                 `json:"remote_id,omitempty"`
	Events   []*importer.Event      `json:"events,omitempty"`
	Aliases  []id.EventID           `json:"aliases,omitempty"`
	Type     string                 `json:"type,omitempty"`
	StateKey string                 `json:"state_key,omitempty"`
	Content  jsontext.Value         `json:"content,omitempty"`
}

type importResp struct {
	Identity *importer.Identity        `json:"identity,omitempty"`
	Portal   *importer.Portal          `json:"portal,omitempty"`
	Ghost    *importer.Ghost           `json:"ghost,omitempty"`
	Users    []id.UserID               `json:"users,omitempty"`
	MXC      string                    `json:"mxc,omitempty"`
	EventIDs []id.EventID              `json:"event_ids,omitempty"`
	Aliases  map[id.EventID]id.EventID `json:"aliases,omitempty"`
	EventID  id.EventID                `json:"event_id,omitempty"`
}

func registerImport(mux *http.ServeMux, imports func(string) (*importer.Local, error), log *slog.Logger) {
	if imports == nil {
		return
	}
	// POST /v1/import/upload?network=&remote_id=&owner=&content_type=&file_name=&size= (the file)
	mux.HandleFunc("POST /v1/import/upload", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		t, err := imports(q.Get("network"))
		if err != nil {
			writeControl(w, err)
			return
		}
		size, _ := strconv.ParseInt(q.Get("size"), 10, 64)
		mxc, err := t.Upload(r.Context(), &importer.Upload{RemoteID: q.Get("remote_id"), Owner: id.UserID(q.Get("owner")),
			ContentType: q.Get("content_type"), FileName: q.Get("file_name"), Size: size}, r.Body)
		if err != nil {
			writeControl(w, err)
			return
		}
		writeControl(w, importResp{MXC: mxc})
	})
	// POST /v1/import/{op} {"network": …}
	mux.HandleFunc("POST /v1/import/{op}", func(w http.ResponseWriter, r *http.Request) {
		var req importReq
		if err := json.NewDecoder(io.LimitReader(r.Body, 256<<20)).Decode(&req); err != nil {
			writeControl(w, types.BadJSON("%v", err))
			return
		}
		t, err := imports(req.Network)
		if err != nil {
			writeControl(w, err)
			return
		}
		ctx := r.Context()
		var out importResp
		switch r.PathValue("op") {
		case "identity":
			out.Identity, err = t.Identity(ctx)
		case "portal":
			out.Portal, err = t.Portal(ctx, req.PortalID)
		case "create_portal":
			if req.Create == nil {
				err = types.MissingParam("create is required")
				break
			}
			out.Portal, err = t.CreatePortal(ctx, req.Create)
			if err == nil {
				log.Info("import: portal room created", "network", req.Network, "portal", req.Create.PortalID,
					"room_id", out.Portal.RoomID)
			}
		case "cursor":
			err = t.SetImportCursor(ctx, req.PortalID, req.Cursor, req.Meta)
		case "ghost":
			if req.Ghost == nil {
				err = types.MissingParam("ghost is required")
				break
			}
			err = t.EnsureGhost(ctx, req.Ghost)
		case "profile":
			out.Ghost, err = t.Profile(ctx, req.User)
		case "joined":
			out.Users, err = t.Joined(ctx, req.RoomID)
		case "media":
			out.MXC, err = t.Media(ctx, req.RemoteID)
		case "batch":
			out.EventIDs, err = t.BatchSend(ctx, req.RoomID, req.Events)
		case "resolve":
			out.Aliases, err = t.ResolveAliases(ctx, req.Aliases)
		case "state":
			out.EventID, err = t.SendState(ctx, req.RoomID, req.User, req.Type, req.StateKey, req.Content)
		default:
			err = types.NotFound("No import operation %q", r.PathValue("op"))
		}
		if err != nil {
			writeControl(w, err)
			return
		}
		writeControl(w, out)
	})
}

// remoteTarget is the Target of the server running on the data directory,
// through its control socket.
type remoteTarget struct {
	network string
	client  *http.Client
}

var _ importer.Target = (*remoteTarget)(nil)

func newRemoteTarget(cfg *config.Config, network string) *remoteTarget {
	path := controlPath(cfg)
	return &remoteTarget{network: network, client: &http.Client{Timeout: 10 * time.Minute, Transport: &http.Transport{
		MaxIdleConnsPerHost: 8,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		}}}}
}

func (t *remoteTarget) do(ctx context.Context, op string, in *importReq, out *importResp) error {
	in.Network = t.network
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return t.post(ctx, "http://control/v1/import/"+op, "application/json", bytes.NewReader(body), out)
}

func (t *remoteTarget) post(ctx context.Context, u, ctype string, body io.Reader, out *importResp) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", ctype)
	resp, err := t.client.Do(req)
	if err != nil {
		return fmt.Errorf("the running server: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Code    string `json:"errcode"`
			Message string `json:"error"`
		}
		_ = json.Unmarshal(raw, &e)
		return types.NewError(resp.StatusCode, e.Code, "%s", e.Message)
	}
	return json.Unmarshal(raw, out)
}

func (t *remoteTarget) Identity(ctx context.Context) (*importer.Identity, error) {
	var out importResp
	err := t.do(ctx, "identity", &importReq{}, &out)
	return out.Identity, err
}

func (t *remoteTarget) Portal(ctx context.Context, portalID string) (*importer.Portal, error) {
	var out importResp
	err := t.do(ctx, "portal", &importReq{PortalID: portalID}, &out)
	return out.Portal, err
}

func (t *remoteTarget) CreatePortal(ctx context.Context, req *importer.CreatePortal) (*importer.Portal, error) {
	var out importResp
	err := t.do(ctx, "create_portal", &importReq{Create: req}, &out)
	return out.Portal, err
}

func (t *remoteTarget) SetImportCursor(ctx context.Context, portalID, cursor, meta string) error {
	return t.do(ctx, "cursor", &importReq{PortalID: portalID, Cursor: cursor, Meta: meta}, &importResp{})
}

func (t *remoteTarget) EnsureGhost(ctx context.Context, g *importer.Ghost) error {
	return t.do(ctx, "ghost", &importReq{Ghost: g}, &importResp{})
}

func (t *remoteTarget) Profile(ctx context.Context, user id.UserID) (*importer.Ghost, error) {
	var out importResp
	err := t.do(ctx, "profile", &importReq{User: user}, &out)
	return out.Ghost, err
}

func (t *remoteTarget) Joined(ctx context.Context, roomID id.RoomID) ([]id.UserID, error) {
	var out importResp
	err := t.do(ctx, "joined", &importReq{RoomID: roomID}, &out)
	return out.Users, err
}

func (t *remoteTarget) Media(ctx context.Context, remoteID string) (string, error) {
	var out importResp
	err := t.do(ctx, "media", &importReq{RemoteID: remoteID}, &out)
	return out.MXC, err
}

func (t *remoteTarget) Upload(ctx context.Context, up *importer.Upload, body io.Reader) (string, error) {
	q := url.Values{"network": {t.network}, "remote_id": {up.RemoteID}, "owner": {string(up.Owner)},
		"content_type": {up.ContentType}, "file_name": {up.FileName}, "size": {strconv.FormatInt(up.Size, 10)}}
	var out importResp
	err := t.post(ctx, "http://control/v1/import/upload?"+q.Encode(), "application/octet-stream", body, &out)
	return out.MXC, err
}

func (t *remoteTarget) BatchSend(ctx context.Context, roomID id.RoomID, evs []*importer.Event) ([]id.EventID, error) {
	var out importResp
	err := t.do(ctx, "batch", &importReq{RoomID: roomID, Events: evs}, &out)
	return out.EventIDs, err
}

func (t *remoteTarget) ResolveAliases(ctx context.Context, aliases []id.EventID) (map[id.EventID]id.EventID, error) {
	var out importResp
	err := t.do(ctx, "resolve", &importReq{Aliases: aliases}, &out)
	return out.Aliases, err
}

func (t *remoteTarget) SendState(ctx context.Context, roomID id.RoomID, sender id.UserID, evType, stateKey string,
	content jsontext.Value) (id.EventID, error) {
	var out importResp
	err := t.do(ctx, "state", &importReq{RoomID: roomID, User: sender, Type: evType, StateKey: stateKey, Content: content}, &out)
	return out.EventID, err
}

// newImportCmd is `tributary import …`.
func newImportCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "import", Short: "Import another network's history into rooms of this server"}
	var filesToken, space, userMap, apiURL string
	var noAvatars bool
	var workers, batch int
	sc := &cobra.Command{
		Use:   "slack EXPORT.zip",
		Short: "Import a Slack workspace export: a space, a room per conversation, ghosts, history",
		Long: `Import a Slack workspace export (Slack's "Export data" zip) into this server: a space for the
workspace, a room per channel, private channel, DM and group DM, a ghost per Slack user (or the
Matrix user a --user-map names), and their history with its original senders and times, threads,
edits, reactions, files, topics, joins and leaves. Run it again with a newer export to import
what is new; a run that was stopped resumes where it was. It works on a stopped server's data
and, through its control socket, on a running server, whose users see the rooms as they fill.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var exp *slack.Export
			defer func() {
				if exp != nil {
					exp.Close()
				}
			}()
			return runImport(cmd, g, slack.Network, userMap, func(ctx context.Context, out io.Writer) (int, error) {
				var err error
				if exp, err = slack.Open(args[0]); err != nil {
					return 0, err
				}
				if err := exp.Check(ctx, nil); err != nil {
					return 0, err
				}
				total := 0
				for _, c := range exp.Conversations {
					total += c.Messages
				}
				fmt.Fprintf(out, "%s: workspace %s, %d users, %d conversations, %d messages\n", args[0], exp.TeamID,
					len(exp.Users), len(exp.Conversations), total)
				return total, nil
			}, func(ctx context.Context, e importEnv) (func(io.Writer), error) {
				sum, err := slack.Import(ctx, slack.Options{Export: exp, GhostPrefix: e.cfg.Imports.Slack.GhostPrefix,
					SpaceName: space, UserMap: e.userMap, FilesToken: filesToken, APIURL: apiURL, Avatars: !noAvatars,
					Workers: workers, BatchEvents: e.batchEvents(batch), Log: e.log, AfterBatch: e.afterBatch, Progress: e.progress,
					Target: e.target})
				if sum == nil {
					return nil, err
				}
				return sum.Write, err
			})
		},
	}
	f := sc.Flags()
	f.StringVar(&filesToken, "files-token", "", "a Slack token (xoxb-/xoxp-) that may download the export's files and list the workspace's custom emoji; without it files stay links and custom emoji :name:")
	f.StringVar(&apiURL, "slack-api-url", slack.DefaultAPIURL, "Slack's Web API (for custom emoji)")
	f.StringVar(&space, "space", "", "the name of the workspace's space (default \"Slack <team ID>\")")
	f.StringVar(&userMap, "user-map", "", "a file of lines \"<Slack user ID or e-mail> <@matrix:user>\": people who are those Matrix users")
	f.BoolVar(&noAvatars, "no-avatars", false, "do not download users' profile pictures")
	f.IntVar(&workers, "workers", 2, "conversations imported at once")
	f.IntVar(&batch, "batch", 0, "events per batch (default 8000 on a stopped server's data, 2000 through a running server)")
	cmd.AddCommand(sc, newImportDiscordCmd(g))
	return cmd
}

// importEnv is what runImport gives an importer: the configuration, the
// user map, where to import to, and the progress bar, crash point (tests)
// and log of the run.
type importEnv struct {
	cfg        *config.Config
	userMap    map[string]id.UserID
	target     importer.Target
	progress   func(messages int)
	afterBatch func()
	log        *slog.Logger
	// bulk: the import writes a stopped server's data (no server runs).
	bulk bool
}

// Events per batch, unless --batch says: on a stopped server's data a
// batch holds the one SQLite writer from no one, and each costs a commit
// (and a room writer's round): 8,000 took 8% less CPU than 2,000 on
// 100,000 Slack messages and wrote a quarter fewer blocks. Through a
// running server a batch holds its writer while people send, so batches
// stay small there.
const (
	bulkBatchEvents = 8000
	liveBatchEvents = 2000
)

// batchEvents is the batch size: n if given, else the default for where
// the import writes.
func (e importEnv) batchEvents(n int) int {
	switch {
	case n > 0:
		return n
	case e.bulk:
		return bulkBatchEvents
	}
	return liveBatchEvents
}

// runImport is what each `tributary import <network>` does around its
// importer: it loads the configuration and the --user-map, profiles the
// run when asked, opens the export (open prints what it holds and returns
// how many messages), shows a progress bar, imports to the running server
// or into its data (run), and prints the summary run returns, if any.
func runImport(cmd *cobra.Command, g *globalFlags, network, userMap string,
	open func(ctx context.Context, out io.Writer) (int, error),
	run func(ctx context.Context, e importEnv) (summary func(io.Writer), err error)) error {
	cfg, _, err := loadConfig(cmd, g, nil)
	if err != nil {
		return err
	}
	mapping, err := readUserMap(userMap, cfg.ServerName)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	stopProfile, err := importProfile()
	if err != nil {
		return err
	}
	defer stopProfile()
	out := cmd.OutOrStdout()
	total, err := open(ctx, out)
	if err != nil {
		return err
	}
	e := importEnv{cfg: cfg, userMap: mapping, afterBatch: crashAfterBatches(), log: newLogger(cfg)}
	var finishBar func()
	e.progress, finishBar = progressBar(ctx, out, total)
	t, closeTarget, err := openImportTarget(ctx, cfg, network, out)
	if err != nil {
		finishBar()
		return err
	}
	defer closeTarget()
	e.target = t
	_, e.bulk = t.(*importer.Local)
	summary, err := run(ctx, e)
	finishBar()
	if summary != nil {
		summary(out)
	}
	if err != nil {
		return fmt.Errorf("import %s: %w", network, err)
	}
	return nil
}

// newImportDiscordCmd is `tributary import discord …`.
func newImportDiscordCmd(g *globalFlags) *cobra.Command {
	var userMap string
	var noAvatars, noDownload bool
	var workers, batch int
	dc := &cobra.Command{
		Use:   "discord EXPORT_DIR_OR_FILES...",
		Short: "Import DiscordChatExporter JSON exports: a space per guild, a room per channel, ghosts, history",
		Long: `Import channels exported by DiscordChatExporter in its JSON format (one file per channel; give
the files, or folders of them) into this server: a space per guild, a room per channel or DM, its
threads in it as Matrix threads, a ghost per Discord user (or the Matrix user a --user-map names),
and the history with its original senders and times, replies, edits, reactions, attachments,
stickers, embeds, renames and pins. The rooms are recorded as the Discord bridge's portals, so the
live bridge goes on in them. Attachments, stickers and custom emoji are downloaded from their
addresses (or read from the export's folder when it was made with its media); what cannot be had
stays a link. Run it again with newer exports to import what is new; a run that was stopped
resumes where it was. It works on a stopped server's data and, through its control socket, on a
running server, whose users see the rooms as they fill.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var exp *discord.Export
			return runImport(cmd, g, discord.Network, userMap, func(ctx context.Context, out io.Writer) (int, error) {
				var err error
				if exp, err = discord.Open(args...); err != nil {
					return 0, err
				}
				if err := exp.Check(ctx, nil); err != nil {
					return 0, err
				}
				total, guilds := 0, map[string]bool{}
				for _, f := range exp.Files {
					total += f.Messages
					guilds[f.Guild.ID] = true
				}
				fmt.Fprintf(out, "%d files of %d guilds, %d messages\n", len(exp.Files), len(guilds), total)
				return total, nil
			}, func(ctx context.Context, e importEnv) (func(io.Writer), error) {
				sum, err := discord.Import(ctx, discord.Options{Export: exp, GhostPrefix: e.cfg.Imports.Discord.GhostPrefix,
					UserMap: e.userMap, Download: !noDownload, Avatars: !noDownload && !noAvatars, Workers: workers,
					BatchEvents: e.batchEvents(batch), Log: e.log, AfterBatch: e.afterBatch, Progress: e.progress, Target: e.target})
				if sum == nil {
					return nil, err
				}
				return sum.Write, err
			})
		},
	}
	f := dc.Flags()
	f.StringVar(&userMap, "user-map", "", "a file of lines \"<Discord user ID or username> <@matrix:user>\": people who are those Matrix users")
	f.BoolVar(&noAvatars, "no-avatars", false, "do not download users' avatars")
	f.BoolVar(&noDownload, "no-download", false, "download nothing: attachments, stickers and custom emoji stay links or names")
	f.IntVar(&workers, "workers", 2, "channels imported at once")
	f.IntVar(&batch, "batch", 0, "events per batch (default 8000 on a stopped server's data, 2000 through a running server)")
	return dc
}

// importProfile starts a CPU profile of the import when
// TRIBUTARY_IMPORT_CPUPROFILE names a file (benchmarks).
func importProfile() (func(), error) {
	path := os.Getenv("TRIBUTARY_IMPORT_CPUPROFILE")
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// crashAfterBatches is, for tests (TRIBUTARY_IMPORT_CRASH_AFTER_BATCHES=n),
// an AfterBatch hook that dies like a killed process after the n-th batch
// is committed and before its cursor is recorded; nil otherwise.
func crashAfterBatches() func() {
	n, _ := strconv.Atoi(os.Getenv("TRIBUTARY_IMPORT_CRASH_AFTER_BATCHES"))
	if n <= 0 {
		return nil
	}
	var mu sync.Mutex
	return func() {
		mu.Lock()
		defer mu.Unlock()
		if n--; n == 0 {
			fmt.Fprintln(os.Stderr, "tributary: crashing as asked (TRIBUTARY_IMPORT_CRASH_AFTER_BATCHES)")
			os.Exit(3)
		}
	}
}

// progressBar shows an import's progress on a terminal; the returned
// progress func is nil elsewhere.
func progressBar(ctx context.Context, out io.Writer, total int) (func(int), func()) {
	f, ok := out.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) || total <= 0 {
		return nil, func() {}
	}
	p := mpb.NewWithContext(ctx, mpb.WithOutput(out), mpb.WithWidth(40))
	bar := p.AddBar(int64(total), mpb.PrependDecorators(decor.Name("messages "), decor.CountersNoUnit("%d / %d")),
		mpb.AppendDecorators(decor.AverageSpeed(0, " %.0f msgs/s"), decor.Name("  ETA "),
			decor.AverageETA(decor.ET_STYLE_GO)))
	return func(n int) { bar.IncrBy(n) }, func() {
		bar.Abort(false)
		p.Wait()
	}
}

// openImportTarget is the target of a network's import: the server running
// on the data directory, through its control socket, or else the data of
// the stopped server, on core services of this process.
func openImportTarget(ctx context.Context, cfg *config.Config, network string, out io.Writer) (importer.Target, func(), error) {
	err := callControl(ctx, cfg, "plugins/list", struct{}{}, &struct{}{})
	if !errors.Is(err, errNoServer) {
		fmt.Fprintln(out, "A server runs on this data directory: importing through it.")
		return newRemoteTarget(cfg, network), func() {}, nil
	}
	// A big import inserts into big indexes: worth a bigger page cache
	// than a running server keeps (256 MiB of memory: 128 of pages).
	cfg.Database.SQLiteCacheMiB = max(cfg.Database.SQLiteCacheMiB, 256)
	cfg.Database.SQLiteBulk = true
	if os.Getenv("GOGC") == "" {
		// The import's garbage is its batches, a few MB each: a heap let
		// grow further between collections costs less CPU (GOGC=300 took
		// 10–15% less user CPU on 20,000 Slack messages, for about 40 MB
		// more); 200 is between that and the default.
		debug.SetGCPercent(200)
	}
	store, err := openStore(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	log := newLogger(cfg)
	core, err := buildCore(ctx, cfg, store, log, nil)
	if err != nil {
		store.Close()
		return nil, nil, err
	}
	media, err := newMedia(store, cfg, log, nil) // an import uploads its own files only
	if err == nil {
		var t *importer.Local
		if t, err = core.importTarget(store, media, network); err == nil {
			return t, func() {
				core.stop()
				store.Close()
			}, nil
		}
	}
	core.stop()
	store.Close()
	return nil, nil, err
}

// readUserMap reads lines "<user ID, name or e-mail> <@user:server>" (or
// with a comma or tab between; # starts a comment).
func readUserMap(path, serverName string) (map[string]id.UserID, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("user map: %w", err)
	}
	defer f.Close()
	out := map[string]id.UserID{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.FieldsFunc(line, func(r rune) bool { return r == ',' || r == '\t' || r == ' ' })
		if len(fields) == 0 {
			continue
		}
		if len(fields) != 2 {
			return nil, fmt.Errorf("user map %s:%d: want \"<user ID, name or e-mail> <@user:server>\"", path, n)
		}
		user := id.UserID(fields[1])
		if _, server, err := user.ParseAndValidateRelaxed(); err != nil || server != serverName {
			return nil, fmt.Errorf("user map %s:%d: %q is not a user of %s", path, n, fields[1], serverName)
		}
		key := fields[0]
		if strings.Contains(key, "@") {
			key = strings.ToLower(key)
		}
		out[key] = user
	}
	return out, sc.Err()
}
