//go:build race

package e2ediscord

// raceBuild: built with -race, as the plugin then is (GOFLAGS=-race).
const raceBuild = true
