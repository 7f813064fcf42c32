package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/admin"
	"github.com/tributary-hs/tributary/core/rooms"
	"github.com/tributary-hs/tributary/core/types"
)

// `tributary admin …` runs the admin API's operations from a shell. Each
// verb is a sequence of operations below; the control socket serves them
// (POST /v1/admin/<name>) when a server runs on the data directory, and
// without one the command builds the same services and runs them itself.
// Either way they are calls of the core/admin methods the HTTP handlers
// call, as the operator (admin.Operator).

// adminOp is one operation: its request decoded from in, its answer.
type adminOp func(ctx context.Context, api *admin.API, in []byte) (any, error)

// statusWait is how long one status operation waits for a deletion or
// purge to end before it answers (the CLI asks again): well under the
// control client's timeout.
const statusWait = 30 * time.Second

type deleteRoomIn struct {
	Room          string    `json:"room"` // ID or alias
	NewRoomUserID id.UserID `json:"new_room_user_id"`
	Message       string    `json:"message"`
	Block         bool      `json:"block"`
	Purge         bool      `json:"purge"`
}

type deleteRoomOut struct {
	DeleteID string    `json:"delete_id"`
	RoomID   id.RoomID `json:"room_id"`
}

type statusIn struct {
	ID     string `json:"id"`
	WaitMS int64  `json:"wait_ms"`
}

type purgeIn struct {
	RoomID            id.RoomID  `json:"room_id"`
	EventID           id.EventID `json:"event_id"`
	TS                int64      `json:"ts"`
	DeleteLocalEvents bool       `json:"delete_local_events"`
}

type quarantineIn struct {
	MXC    string    `json:"mxc"`
	RoomID id.RoomID `json:"room_id"`
	UserID id.UserID `json:"user_id"`
}

type quarantineOut struct {
	NumQuarantined int `json:"num_quarantined"`
}

// op decodes a request of type T and runs fn on it.
func op[T any](fn func(ctx context.Context, api *admin.API, in *T) (any, error)) adminOp {
	return func(ctx context.Context, api *admin.API, raw []byte) (any, error) {
		in := new(T)
		if err := json.Unmarshal(raw, in); err != nil {
			return nil, types.BadJSON("%v", err)
		}
		return fn(ctx, api, in)
	}
}

var adminOps = map[string]adminOp{
	"users/list": op(func(ctx context.Context, api *admin.API, q *admin.UserQuery) (any, error) {
		return api.ListUsers(ctx, *q)
	}),
	"rooms/list": op(func(ctx context.Context, api *admin.API, q *admin.RoomQuery) (any, error) {
		return api.ListRooms(ctx, *q)
	}),
	"rooms/delete": op(func(ctx context.Context, api *admin.API, in *deleteRoomIn) (any, error) {
		roomID, err := api.ResolveRoom(ctx, in.Room)
		if err != nil {
			return nil, err
		}
		deleteID, err := api.StartDeleteRoom(ctx, admin.Operator(), admin.DeleteOptions{RoomID: roomID,
			NewRoomUserID: in.NewRoomUserID, Message: in.Message, Block: in.Block, Purge: in.Purge})
		if err != nil {
			return nil, err
		}
		return &deleteRoomOut{DeleteID: deleteID, RoomID: roomID}, nil
	}),
	"rooms/delete_status": op(func(ctx context.Context, api *admin.API, in *statusIn) (any, error) {
		return api.DeleteStatusOf(ctx, in.ID, min(time.Duration(in.WaitMS)*time.Millisecond, statusWait))
	}),
	"history/purge": op(func(ctx context.Context, api *admin.API, in *purgeIn) (any, error) {
		purgeID, err := api.StartPurgeHistory(ctx, admin.Operator(), &rooms.PurgeHistoryRequest{RoomID: in.RoomID,
			EventID: in.EventID, TS: in.TS, DeleteLocalEvents: in.DeleteLocalEvents})
		if err != nil {
			return nil, err
		}
		return map[string]string{"purge_id": purgeID}, nil
	}),
	"history/purge_status": op(func(ctx context.Context, api *admin.API, in *statusIn) (any, error) {
		return api.PurgeStatusOf(ctx, in.ID, min(time.Duration(in.WaitMS)*time.Millisecond, statusWait))
	}),
	"media/quarantine": op(func(ctx context.Context, api *admin.API, in *quarantineIn) (any, error) {
		uri, err := id.ParseContentURI(in.MXC)
		if err != nil || !strings.HasPrefix(in.MXC, "mxc://") {
			return nil, types.InvalidParam("%q is not an mxc:// URI", in.MXC)
		}
		n, err := api.QuarantineMedia(ctx, admin.Operator(), uri.Homeserver, uri.FileID, true)
		return &quarantineOut{n}, err
	}),
	"media/quarantine_room": op(func(ctx context.Context, api *admin.API, in *quarantineIn) (any, error) {
		n, err := api.QuarantineRoomMedia(ctx, admin.Operator(), in.RoomID)
		return &quarantineOut{n}, err
	}),
	"media/quarantine_user": op(func(ctx context.Context, api *admin.API, in *quarantineIn) (any, error) {
		n, err := api.QuarantineUserMedia(ctx, admin.Operator(), in.UserID)
		return &quarantineOut{n}, err
	}),
}

// registerAdmin serves the admin operations on the control socket.
func registerAdmin(mux *http.ServeMux, api *admin.API) {
	for name, fn := range adminOps {
		// POST /v1/admin/<name> {request}
		mux.HandleFunc("POST /v1/admin/"+name, func(w http.ResponseWriter, r *http.Request) {
			raw, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
			if err != nil {
				writeControl(w, types.BadJSON("%v", err))
				return
			}
			out, err := fn(r.Context(), api, raw)
			if err != nil {
				writeControl(w, err)
				return
			}
			writeControl(w, out)
		})
	}
}

// adminSession runs admin operations through the running server, or on the
// data directory itself when none runs.
type adminSession struct {
	call func(ctx context.Context, name string, in, out any) error
	// remote: through a running server.
	remote bool
	close  func()
}

func openAdmin(cmd *cobra.Command, g *globalFlags) (*adminSession, error) {
	cfg, _, err := loadConfig(cmd, g, nil)
	if err != nil {
		return nil, err
	}
	if c, err := net.DialTimeout("unix", controlPath(cfg), time.Second); err == nil {
		c.Close()
		return &adminSession{remote: true, close: func() {},
			call: func(ctx context.Context, name string, in, out any) error {
				err := callControl(ctx, cfg, "admin/"+name, in, out)
				if errors.Is(err, errNoServer) {
					return fmt.Errorf("the server on %s stopped", cfg.DataDir)
				}
				return err
			}}, nil
	}
	// No server runs on the data directory, so this process is the only
	// writer: the same services as the server's.
	ctx := cmd.Context()
	store, err := openStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	log := newLogger(cfg)
	core, err := buildCore(ctx, cfg, store, log, nil)
	if err != nil {
		store.Close()
		return nil, err
	}
	mediaSvc, err := newMedia(store, cfg, log, nil)
	if err != nil {
		core.stop()
		store.Close()
		return nil, err
	}
	api := core.adminAPI(cfg, mediaSvc, nil, nil, log)
	return &adminSession{
		close: func() {
			core.stop()
			store.Close()
		},
		call: func(ctx context.Context, name string, in, out any) error {
			raw, err := json.Marshal(in)
			if err != nil {
				return err
			}
			res, err := adminOps[name](ctx, api, raw)
			if err != nil {
				return err
			}
			b, err := json.Marshal(res)
			if err != nil {
				return err
			}
			return json.Unmarshal(b, out)
		}}, nil
}

// errorMessage is a Matrix error as one line for a shell ("M_NOT_FOUND:
// Room not found" reads worse than the message alone).
func errorMessage(err error) error {
	if me, ok := types.AsError(err); ok && me.Message != "" {
		return errors.New(me.Message)
	}
	return err
}

func newAdminCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "admin", Short: "Administer the server: users, rooms, history, media (as the admin API does)"}
	var asJSON bool
	cmd.PersistentFlags().BoolVar(&asJSON, "json", false, "print the admin API's (Synapse's) JSON instead of a table")
	// run opens a session for one verb and reports its error as one line.
	run := func(cmd *cobra.Command, what string, fn func(ctx context.Context, s *adminSession) error) error {
		s, err := openAdmin(cmd, g)
		if err != nil {
			return err
		}
		defer s.close()
		if err := fn(cmd.Context(), s); err != nil {
			return fmt.Errorf("%s: %w", what, errorMessage(err))
		}
		return nil
	}
	printJSON := func(cmd *cobra.Command, v any) error {
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	via := func(s *adminSession) string {
		if s.remote {
			return " (through the running server)"
		}
		return ""
	}

	users := &cobra.Command{Use: "users", Short: "Local users"}
	var uq admin.UserQuery
	var admins bool
	usersList := &cobra.Command{
		Use:   "list",
		Short: "List users (deactivated ones only with --deactivated)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return run(cmd, "list users", func(ctx context.Context, s *adminSession) error {
				q := uq
				q.Limit = math.MaxInt32
				if cmd.Flags().Changed("admins") {
					q.Admins = &admins
				}
				var page admin.UserPage
				if err := s.call(ctx, "users/list", q, &page); err != nil {
					return err
				}
				if asJSON {
					return printJSON(cmd, &page)
				}
				w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "USER ID\tDISPLAY NAME\tADMIN\tDEACTIVATED\tCREATED")
				for _, u := range page.Users {
					fmt.Fprintf(w, "%s\t%s\t%v\t%v\t%s\n", u.Name, orDash(u.DisplayName), u.Admin, u.Deactivated,
						time.UnixMilli(u.CreationTS).UTC().Format("2006-01-02 15:04"))
				}
				return w.Flush()
			})
		},
	}
	usersList.Flags().StringVar(&uq.Name, "name", "", "only users whose ID or display name contains this")
	usersList.Flags().BoolVar(&uq.Deactivated, "deactivated", false, "list deactivated users too")
	usersList.Flags().BoolVar(&admins, "admins", false, "only admins (--admins=false: only non-admins)")
	users.AddCommand(usersList)

	roomsCmd := &cobra.Command{Use: "rooms", Short: "Rooms this server knows"}
	var search string
	roomsList := &cobra.Command{
		Use:   "list",
		Short: "List rooms",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return run(cmd, "list rooms", func(ctx context.Context, s *adminSession) error {
				var page admin.RoomPage
				if err := s.call(ctx, "rooms/list", admin.RoomQuery{Search: search, Limit: math.MaxInt32}, &page); err != nil {
					return err
				}
				if asJSON {
					return printJSON(cmd, &page)
				}
				w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "ROOM ID\tNAME\tALIAS\tMEMBERS\tLOCAL\tVERSION\tCREATOR")
				for _, r := range page.Rooms {
					alias := "-"
					if r.CanonicalAlias != nil {
						alias = string(*r.CanonicalAlias)
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%d\t%s\t%s\n", r.RoomID, orDash(r.Name), alias, r.JoinedMembers,
						r.JoinedLocalMembers, r.Version, r.Creator)
				}
				return w.Flush()
			})
		},
	}
	roomsList.Flags().StringVar(&search, "search", "", "only rooms whose name, ID or alias contains this")
	var del deleteRoomIn
	roomsDelete := &cobra.Command{
		Use:   "delete ROOM_ID_OR_ALIAS",
		Short: "Remove a room's local members and aliases; with --purge delete it from the database, with --block keep it out",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return run(cmd, "delete "+args[0], func(ctx context.Context, s *adminSession) error {
				in := del
				in.Room = args[0]
				var started deleteRoomOut
				if err := s.call(ctx, "rooms/delete", in, &started); err != nil {
					return err
				}
				if !asJSON {
					fmt.Fprintf(cmd.OutOrStdout(), "Deleting %s (delete ID %s)%s…\n", started.RoomID, started.DeleteID, via(s))
				}
				var st admin.DeleteStatus
				for st.Status != "complete" && st.Status != "failed" {
					if err := s.call(ctx, "rooms/delete_status", statusIn{ID: started.DeleteID, WaitMS: statusWait.Milliseconds()}, &st); err != nil {
						return err
					}
				}
				if asJSON {
					if err := printJSON(cmd, &st); err != nil {
						return err
					}
				}
				if st.Status == "failed" {
					return errors.New(st.Error)
				}
				if !asJSON {
					printDeleted(cmd.OutOrStdout(), &st, in)
				}
				return nil
			})
		},
	}
	roomsDelete.Flags().BoolVar(&del.Purge, "purge", false, "delete every row of the room from the database")
	roomsDelete.Flags().BoolVar(&del.Block, "block", false, "keep this server's users out of the room from now on")
	roomsDelete.Flags().StringVar(&del.Message, "message", "", "the message posted in the new room (with --new-room-user-id)")
	roomsDelete.Flags().StringVar((*string)(&del.NewRoomUserID), "new-room-user-id", "",
		"move the local members into a new room made by this local user")
	roomsCmd.AddCommand(roomsList, roomsDelete)

	history := &cobra.Command{Use: "history", Short: "Room history"}
	var pin purgeIn
	var beforeTS int64
	var before time.Duration
	purge := &cobra.Command{
		Use:   "purge ROOM_ID (--before-event EVENT_ID | --before-ts MS | --before DURATION)",
		Short: "Delete a room's history before an event or a time (other servers' events; local ones with --delete-local-events)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n := 0
			for _, f := range []string{"before-event", "before-ts", "before"} {
				if cmd.Flags().Changed(f) {
					n++
				}
			}
			if n != 1 {
				return errors.New("purge history: give exactly one of --before-event, --before-ts and --before")
			}
			in := pin
			in.RoomID = id.RoomID(args[0])
			switch {
			case cmd.Flags().Changed("before-ts"):
				in.TS = beforeTS
			case cmd.Flags().Changed("before"):
				if before <= 0 {
					return errors.New("purge history: --before must be a positive duration, such as 720h")
				}
				in.TS = time.Now().Add(-before).UnixMilli()
			}
			return run(cmd, "purge history of "+args[0], func(ctx context.Context, s *adminSession) error {
				var started struct {
					PurgeID string `json:"purge_id"`
				}
				if err := s.call(ctx, "history/purge", in, &started); err != nil {
					return err
				}
				if !asJSON {
					fmt.Fprintf(cmd.OutOrStdout(), "Purging history of %s (purge ID %s)%s…\n", in.RoomID, started.PurgeID, via(s))
				}
				var st admin.TaskStatus
				for st.Status != "complete" && st.Status != "failed" {
					if err := s.call(ctx, "history/purge_status", statusIn{ID: started.PurgeID, WaitMS: statusWait.Milliseconds()}, &st); err != nil {
						return err
					}
				}
				if asJSON {
					if err := printJSON(cmd, &st); err != nil {
						return err
					}
				}
				if st.Status == "failed" {
					return errors.New(st.Error)
				}
				if !asJSON {
					fmt.Fprintf(cmd.OutOrStdout(), "Purged history of %s: %s\n", in.RoomID, st.Status)
				}
				return nil
			})
		},
	}
	purge.Flags().StringVar((*string)(&pin.EventID), "before-event", "", "purge the events before this one")
	purge.Flags().Int64Var(&beforeTS, "before-ts", 0, "purge the events before this time (ms since the epoch)")
	purge.Flags().DurationVar(&before, "before", 0, "purge the events older than this (e.g. 720h)")
	purge.Flags().BoolVar(&pin.DeleteLocalEvents, "delete-local-events", false, "purge this server's users' events too")
	history.AddCommand(purge)

	mediaCmd := &cobra.Command{Use: "media", Short: "Media"}
	quarantine := func(use, short, opName, what string, in func(arg string) quarantineIn) *cobra.Command {
		return &cobra.Command{
			Use:   use,
			Short: short,
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				return run(cmd, "quarantine "+what+" "+args[0], func(ctx context.Context, s *adminSession) error {
					var out quarantineOut
					if err := s.call(ctx, opName, in(args[0]), &out); err != nil {
						return err
					}
					if asJSON {
						return printJSON(cmd, &out)
					}
					switch {
					case what == "media" && out.NumQuarantined == 0:
						fmt.Fprintf(cmd.OutOrStdout(), "Nothing quarantined: %s is unknown, protected, or quarantined already%s\n", args[0], via(s))
						return nil
					case what == "media":
						fmt.Fprintf(cmd.OutOrStdout(), "Quarantined %s%s\n", args[0], via(s))
						return nil
					}
					fmt.Fprintf(cmd.OutOrStdout(), "Quarantined %d media of %s%s\n", out.NumQuarantined, args[0], via(s))
					return nil
				})
			},
		}
	}
	mediaCmd.AddCommand(
		quarantine("quarantine MXC_URI", "Quarantine one of this server's media: no one can download it", "media/quarantine", "media",
			func(a string) quarantineIn { return quarantineIn{MXC: a} }),
		quarantine("quarantine-room ROOM_ID", "Quarantine every medium a room's events refer to", "media/quarantine_room", "media of",
			func(a string) quarantineIn { return quarantineIn{RoomID: id.RoomID(a)} }),
		quarantine("quarantine-user USER_ID", "Quarantine every medium a local user uploaded (but protected ones)", "media/quarantine_user",
			"media of", func(a string) quarantineIn { return quarantineIn{UserID: id.UserID(a)} }),
	)
	cmd.AddCommand(users, roomsCmd, history, mediaCmd)
	return cmd
}

// printDeleted reports a finished room deletion.
func printDeleted(w io.Writer, st *admin.DeleteStatus, in deleteRoomIn) {
	r := st.ShutdownRoom
	list := func(xs []id.UserID) string {
		if len(xs) == 0 {
			return "none"
		}
		s := make([]string, len(xs))
		for i, x := range xs {
			s[i] = string(x)
		}
		return strings.Join(s, ", ")
	}
	var done []string
	if in.Block {
		done = append(done, "blocked")
	}
	if in.Purge {
		done = append(done, "purged")
	}
	fmt.Fprintf(w, "Deleted %s", st.RoomID)
	if len(done) > 0 {
		fmt.Fprintf(w, " (%s)", strings.Join(done, ", "))
	}
	fmt.Fprintf(w, "\n  removed members: %s\n", list(r.KickedUsers))
	if len(r.FailedToKickUsers) > 0 {
		fmt.Fprintf(w, "  failed to remove: %s\n", list(r.FailedToKickUsers))
	}
	if len(r.LocalAliases) > 0 {
		aliases := make([]string, len(r.LocalAliases))
		for i, a := range r.LocalAliases {
			aliases[i] = string(a)
		}
		fmt.Fprintf(w, "  removed aliases: %s\n", strings.Join(aliases, ", "))
	}
	if r.NewRoomID != nil {
		fmt.Fprintf(w, "  new room: %s\n", *r.NewRoomID)
	}
}

// orDash is a name for a table cell: "-" for none, and escaped, so that a
// name with a tab or newline in it cannot break the table's rows.
func orDash(s *string) string {
	if s == nil || *s == "" {
		return "-"
	}
	q := strconv.Quote(*s)
	return q[1 : len(q)-1]
}
