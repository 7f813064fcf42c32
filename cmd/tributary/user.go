package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"golang.org/x/term"

	"github.com/tributary-hs/tributary/core/users"
)

func newUserCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "user", Short: "Manage local users"}
	withUsers := func(cmd *cobra.Command, fn func(ctx context.Context, us *users.Service) error) error {
		cfg, _, err := loadConfig(cmd, g, nil)
		if err != nil {
			return err
		}
		ctx := cmd.Context()
		store, err := openStore(ctx, cfg)
		if err != nil {
			return err
		}
		defer store.Close()
		// No server runs on the data directory (commands that change a
		// running server go through its control socket first), so this
		// process is the only writer: the same services as the server's.
		core, err := buildCore(ctx, cfg, store, newLogger(cfg), nil)
		if err != nil {
			return err
		}
		defer core.stop()
		return fn(ctx, core.users)
	}

	var password string
	var admin bool
	add := &cobra.Command{
		Use:   "add NAME",
		Short: "Create a user (asks for the password unless --password is given)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withUsers(cmd, func(ctx context.Context, us *users.Service) error {
				pw := password
				if !cmd.Flags().Changed("password") {
					var err error
					if pw, err = readPassword(cmd); err != nil {
						return err
					}
				}
				userID, err := us.CreateUser(ctx, args[0], pw, admin)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "Created %s%s\n", userID, map[bool]string{true: " (admin)"}[admin])
				return nil
			})
		},
	}
	add.Flags().StringVar(&password, "password", "", "the password (visible in the process list: prefer the prompt or stdin)")
	add.Flags().BoolVar(&admin, "admin", false, "make the user a server admin")

	list := &cobra.Command{
		Use:   "list",
		Short: "List users",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withUsers(cmd, func(ctx context.Context, us *users.Service) error {
				accs, err := us.ListAccounts(ctx)
				if err != nil {
					return err
				}
				w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "USER ID\tADMIN\tDEACTIVATED")
				for _, a := range accs {
					fmt.Fprintf(w, "%s\t%v\t%v\n", a.UserID, a.IsAdmin, a.Deactivated)
				}
				return w.Flush()
			})
		},
	}

	deactivate := &cobra.Command{
		Use:   "deactivate NAME",
		Short: "Deactivate a user: log out every device, leave every room and forbid login",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			// A running server does it itself, at once: its tokens stop
			// working and its room writers make the user leave.
			cfg, _, err := loadConfig(cmd, g, nil)
			if err != nil {
				return err
			}
			var out struct {
				UserID string `json:"user_id"`
			}
			err = callControl(cmd.Context(), cfg, "users/deactivate", map[string]string{"user": args[0]}, &out)
			if err == nil {
				fmt.Fprintf(cmd.OutOrStdout(), "Deactivated %s (through the running server)\n", out.UserID)
				return nil
			} else if !errors.Is(err, errNoServer) {
				return fmt.Errorf("deactivate %s: %w", args[0], err)
			}
			return withUsers(cmd, func(ctx context.Context, us *users.Service) error {
				userID, err := us.DeactivateByName(ctx, args[0])
				if err != nil {
					return fmt.Errorf("deactivate %s: %w", args[0], err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "Deactivated %s\n", userID)
				return nil
			})
		},
	}
	cmd.AddCommand(add, list, deactivate)
	return cmd
}

// readPassword prompts twice on a terminal, or reads one line from stdin.
func readPassword(cmd *cobra.Command) (string, error) {
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
		if line = strings.TrimRight(line, "\r\n"); line == "" {
			if err != nil {
				return "", errors.New("no password on stdin (or use --password)")
			}
			return "", errors.New("empty password")
		}
		return line, nil
	}
	fmt.Fprint(cmd.ErrOrStderr(), "Password: ")
	a, err := term.ReadPassword(fd)
	fmt.Fprintln(cmd.ErrOrStderr())
	if err != nil {
		return "", err
	}
	fmt.Fprint(cmd.ErrOrStderr(), "Confirm password: ")
	b, err := term.ReadPassword(fd)
	fmt.Fprintln(cmd.ErrOrStderr())
	if err != nil {
		return "", err
	}
	if string(a) != string(b) {
		return "", errors.New("passwords do not match")
	}
	return string(a), nil
}
