// Package e2ee is test support for end-to-end encryption tests: the
// mautrix crypto stores that the tests' OlmMachines run on (in memory,
// with mautrix's data races fixed) and a client that syncs, decrypts and
// sends Megolm messages. Its code needs mautrix's pure-Go olm (-tags
// goolm), as the tests that use it do.
package e2ee
