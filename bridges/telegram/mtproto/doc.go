// Package mtproto is the groundwork of the Telegram bridge's user-account
// (MTProto) mode, on github.com/gotd/td: the bridgev2 login process (phone
// number → code → 2FA password) and FLOOD_WAIT handling, both over gotd's
// tg.Invoker so that they are tested against gotd's tgmock.
//
// Not built yet (see the Telegram issue): the connection itself (a
// telegram.Client per login with its session in the login's metadata),
// update handling, message conversion, sending, and backfill. Until then
// the connector does not offer the phone login flow, and the plugin binary
// does not link this package.
package mtproto
