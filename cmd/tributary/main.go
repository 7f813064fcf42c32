// Command tributary is the Tributary homeserver. This package is the only
// place that wires: it loads the configuration, opens storage, builds the
// services and runs the selected command.
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := newRootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "tributary:", err)
		os.Exit(1)
	}
}
