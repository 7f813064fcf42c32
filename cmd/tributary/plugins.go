package main

import (
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tributary-hs/tributary/bridges/manager"
	"github.com/tributary-hs/tributary/plugins/host"
)

// newPluginsCmd is `tributary plugins …`: the bridge plugins of the server
// running on the data directory.
func newPluginsCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "plugins", Short: "Bridge plugins of the running server"}
	list := &cobra.Command{
		Use:   "list",
		Short: "List the configured plugins with their state and restarts",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, _, err := loadConfig(cmd, g, nil)
			if err != nil {
				return err
			}
			var out struct {
				Plugins []manager.Status `json:"plugins"`
			}
			err = callControl(cmd.Context(), cfg, "plugins/list", struct{}{}, &out)
			if errors.Is(err, errNoServer) {
				// Nothing runs them: say what is configured.
				out.Plugins = nil
				for _, p := range cfg.Plugins {
					out.Plugins = append(out.Plugins, manager.Status{Status: host.Status{Name: p.Name, State: host.StateStopped}})
				}
			} else if err != nil {
				return fmt.Errorf("plugins list: %w", err)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tNETWORK\tVERSION\tSTATE\tSINCE\tRESTARTS\tLOGINS\tLAST ERROR")
			for _, p := range out.Plugins {
				since := "-"
				if !p.Since.IsZero() && p.State != host.StateStopped {
					since = p.Since.UTC().Format(time.RFC3339)
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", p.Name, dash(p.Network), dash(p.Version), p.State, since,
					p.Restarts, logins(p.Logins), p.LastError)
			}
			return w.Flush()
		},
	}
	cmd.AddCommand(list)
	return cmd
}

// logins says each login's bridge state: "@alice:hs/alice-id CONNECTED",
// or the bridge's own state when it has no login.
func logins(ls []manager.LoginState) string {
	var parts []string
	for _, l := range ls {
		who := l.UserID
		if l.RemoteID != "" {
			who += "/" + l.RemoteID
		}
		s := strings.TrimPrefix(who+" "+l.State, " ")
		if l.Error != "" {
			s += " (" + l.Error + ")"
		}
		parts = append(parts, s)
	}
	return dash(strings.Join(parts, ", "))
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
