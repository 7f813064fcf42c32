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

	"github.com/tributary-hs/tributary/appservice/registry"
	"golang.org/x/term"

	ckeys "github.com/tributary-hs/tributary/core/keys"
	"github.com/tributary-hs/tributary/core/stream"
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
		// Deactivating deletes the user's device keys; no server listens
		// to this process's notifier, so it starts anywhere.
		keysSvc, err := ckeys.New(store, stream.NewLocal(stream.Positions{}), ckeys.Options{ServerName: cfg.ServerName})
		if err != nil {
			return err
		}
		reg, err := registry.Load(cfg.AppServiceConfigFiles, cfg.ServerName)
		if err != nil {
			return err
		}
		us, err := newUsers(store, cfg, newLogger(cfg), reg, nil, nil, keysSvc.DevicesDeleted)
		if err != nil {
			return err
		}
		return fn(ctx, us)
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
		Short: "Deactivate a user: log out every device and forbid login",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
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
