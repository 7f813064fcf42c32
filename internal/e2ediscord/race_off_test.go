//go:build !race

package e2ediscord

const raceBuild = false
