// Package e2etelegram tests the Telegram bridge end to end: the real
// tributary binary runs the real tributary-telegram plugin binary, whose
// Bot API is a local fake (bridges/telegram/tgfake), and Matrix users talk
// with fake Telegram users through it.
package e2etelegram
