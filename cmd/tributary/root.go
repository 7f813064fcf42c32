package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/tributary-hs/tributary/core/config"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// globalFlags are the flags every command that opens the database takes.
type globalFlags struct {
	config      string
	dataDir     string
	databaseURL string
	serverName  string
}

func newRootCmd() *cobra.Command {
	g := &globalFlags{}
	root := &cobra.Command{
		Use:           "tributary",
		Short:         "Tributary, a Matrix homeserver",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.config, "config", "", "config file (default: <data-dir>/tributary.yaml if it exists)")
	pf.StringVar(&g.dataDir, "data-dir", "", "data directory (default ./data)")
	pf.StringVar(&g.databaseURL, "database-url", "", "postgres:// URL (default: SQLite in the data directory)")
	pf.StringVar(&g.serverName, "server-name", "", "server name, the domain of user IDs (default localhost)")
	root.AddCommand(newServeCmd(g), newGenerateConfigCmd(), newUserCmd(g), newAdminCmd(g), newPluginsCmd(g), newImportCmd(g), &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintf(cmd.OutOrStdout(), "tributary %s (%s %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		},
	})
	return root
}

// loadConfig builds the configuration: defaults, then the config file, then
// TRIBUTARY_* environment variables, then flags; apply sets the flags of the
// command being run. It returns the path of the file it read, "" if none.
func loadConfig(cmd *cobra.Command, g *globalFlags, apply func(*config.Config)) (*config.Config, string, error) {
	cfg := config.Default()
	path := g.config
	if path == "" {
		dir := g.dataDir
		if dir == "" {
			dir = os.Getenv("TRIBUTARY_DATA_DIR")
		}
		if dir == "" {
			dir = cfg.DataDir
		}
		path = filepath.Join(dir, "tributary.yaml")
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			path = ""
		}
	}
	if path != "" {
		if err := config.LoadFile(cfg, path); err != nil {
			return nil, "", err
		}
	}
	if err := config.ApplyEnv(cfg, os.Getenv); err != nil {
		return nil, "", err
	}
	f := cmd.Flags()
	if f.Changed("data-dir") {
		cfg.DataDir = g.dataDir
	}
	if f.Changed("database-url") {
		cfg.Database.URL = g.databaseURL
	}
	if f.Changed("server-name") {
		cfg.ServerName = g.serverName
	}
	if apply != nil {
		apply(cfg)
	}
	if err := cfg.Validate(); err != nil {
		if path != "" {
			return nil, "", fmt.Errorf("%s: %w", path, err)
		}
		return nil, "", err
	}
	return cfg, path, nil
}

func newGenerateConfigCmd() *cobra.Command {
	var serverName, output string
	cmd := &cobra.Command{
		Use:   "generate-config",
		Short: "Print a commented configuration file",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := config.Default()
			cfg.ServerName = serverName
			if err := cfg.Validate(); err != nil {
				return err
			}
			cfg.PublicBaseURL = "" // leave the derived default to the server
			out, err := config.Commented(cfg)
			if err != nil {
				return err
			}
			if output == "" {
				_, err = cmd.OutOrStdout().Write(out)
				return err
			}
			return writeNewFile(output, out)
		},
	}
	cmd.Flags().StringVar(&serverName, "server-name", "localhost", "server name, the domain of user IDs")
	cmd.Flags().StringVarP(&output, "output", "o", "", "write to this file (refuses to overwrite) instead of stdout")
	return cmd
}

// writeNewFile writes a file that must not exist yet, readable only by its owner.
func writeNewFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
