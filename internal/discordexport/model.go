package discordexport

// The JSON shapes of an export, as DiscordChatExporter writes them (the
// fields an importer reads and a few it does not, as real files have).

type file struct {
	Guild        guild     `json:"guild"`
	Channel      channel   `json:"channel"`
	DateRange    dateRange `json:"dateRange"`
	ExportedAt   string    `json:"exportedAt"`
	Messages     []message `json:"messages"`
	MessageCount int       `json:"messageCount"`
}

type guild struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	IconURL string `json:"iconUrl"`
}

type channel struct {
	ID         string  `json:"id"`
	Type       string  `json:"type"`
	CategoryID *string `json:"categoryId"`
	Category   *string `json:"category"`
	Name       string  `json:"name"`
	Topic      *string `json:"topic"`
}

type dateRange struct {
	After  *string `json:"after"`
	Before *string `json:"before"`
}

type message struct {
	ID                 string       `json:"id"`
	Type               string       `json:"type"`
	Timestamp          string       `json:"timestamp"`
	TimestampEdited    *string      `json:"timestampEdited"`
	CallEndedTimestamp *string      `json:"callEndedTimestamp"`
	IsPinned           bool         `json:"isPinned"`
	Content            string       `json:"content"`
	Author             author       `json:"author"`
	Attachments        []attachment `json:"attachments"`
	Embeds             []embed      `json:"embeds"`
	Stickers           []sticker    `json:"stickers"`
	Reactions          []reaction   `json:"reactions"`
	Mentions           []author     `json:"mentions"`
	Reference          *reference   `json:"reference,omitempty"`
}

type author struct {
	ID            string  `json:"id"`
	Name          string  `json:"name"`
	Discriminator string  `json:"discriminator"`
	Nickname      string  `json:"nickname"`
	Color         *string `json:"color"`
	IsBot         bool    `json:"isBot"`
	Roles         []role  `json:"roles,omitempty"`
	AvatarURL     string  `json:"avatarUrl"`
}

type role struct {
	ID       string  `json:"id"`
	Name     string  `json:"name"`
	Color    *string `json:"color"`
	Position int     `json:"position"`
}

type attachment struct {
	ID            string `json:"id"`
	URL           string `json:"url"`
	FileName      string `json:"fileName"`
	FileSizeBytes int64  `json:"fileSizeBytes"`
}

type embed struct {
	Title       string       `json:"title"`
	URL         *string      `json:"url"`
	Timestamp   *string      `json:"timestamp"`
	Description string       `json:"description"`
	Color       *string      `json:"color,omitempty"`
	Author      *embedAuthor `json:"author,omitempty"`
	Thumbnail   *embedImage  `json:"thumbnail,omitempty"`
	Images      []embedImage `json:"images"`
	Fields      []embedField `json:"fields"`
	Footer      *embedFooter `json:"footer,omitempty"`
}

type embedAuthor struct {
	Name string  `json:"name"`
	URL  *string `json:"url"`
}

type embedImage struct {
	URL    string `json:"url"`
	Width  int    `json:"width"`
	Height int    `json:"height"`
}

type embedField struct {
	Name     string `json:"name"`
	Value    string `json:"value"`
	IsInline bool   `json:"isInline"`
}

type embedFooter struct {
	Text string `json:"text"`
}

type sticker struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Format    string `json:"format"`
	SourceURL string `json:"sourceUrl"`
}

type reaction struct {
	Emoji emoji    `json:"emoji"`
	Count int      `json:"count"`
	Users []author `json:"users"`
}

type emoji struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Code       string `json:"code"`
	IsAnimated bool   `json:"isAnimated"`
	ImageURL   string `json:"imageUrl"`
}

type reference struct {
	MessageID *string `json:"messageId"`
	ChannelID string  `json:"channelId"`
	GuildID   *string `json:"guildId"`
}
