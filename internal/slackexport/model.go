package slackexport

// The JSON shapes of an export, as Slack writes them (the fields an
// importer reads and a few it does not, as real files have).

type user struct {
	ID       string  `json:"id"`
	TeamID   string  `json:"team_id"`
	Name     string  `json:"name"`
	Deleted  bool    `json:"deleted"`
	Color    string  `json:"color,omitempty"`
	RealName string  `json:"real_name,omitempty"`
	TZ       string  `json:"tz,omitempty"`
	Profile  profile `json:"profile"`
	IsAdmin  bool    `json:"is_admin"`
	IsOwner  bool    `json:"is_owner"`
	IsBot    bool    `json:"is_bot"`
	IsApp    bool    `json:"is_app_user"`
	Updated  int64   `json:"updated"`
}

type profile struct {
	Title                 string `json:"title"`
	RealName              string `json:"real_name"`
	RealNameNormalized    string `json:"real_name_normalized"`
	DisplayName           string `json:"display_name"`
	DisplayNameNormalized string `json:"display_name_normalized"`
	Email                 string `json:"email,omitempty"`
	AvatarHash            string `json:"avatar_hash,omitempty"`
	Image72               string `json:"image_72,omitempty"`
	Image512              string `json:"image_512,omitempty"`
	FirstName             string `json:"first_name,omitempty"`
	LastName              string `json:"last_name,omitempty"`
	Team                  string `json:"team"`
	BotID                 string `json:"bot_id,omitempty"`
}

type topic struct {
	Value   string `json:"value"`
	Creator string `json:"creator"`
	LastSet int64  `json:"last_set"`
}

type pin struct {
	ID      string `json:"id"`
	Type    string `json:"type"`
	Created int64  `json:"created"`
	User    string `json:"user"`
	Owner   string `json:"owner"`
}

// channel is an entry of channels.json, groups.json or mpims.json.
type channel struct {
	ID         string   `json:"id"`
	Name       string   `json:"name"`
	Created    int64    `json:"created"`
	Creator    string   `json:"creator"`
	IsArchived bool     `json:"is_archived"`
	IsGeneral  bool     `json:"is_general,omitempty"`
	Members    []string `json:"members"`
	Pins       []pin    `json:"pins,omitempty"`
	Topic      topic    `json:"topic"`
	Purpose    topic    `json:"purpose"`
}

// dm is an entry of dms.json.
type dm struct {
	ID      string   `json:"id"`
	Created int64    `json:"created"`
	Members []string `json:"members"`
}

type message struct {
	Type            string         `json:"type"`
	Subtype         string         `json:"subtype,omitempty"`
	TS              string         `json:"ts"`
	User            string         `json:"user,omitempty"`
	BotID           string         `json:"bot_id,omitempty"`
	Username        string         `json:"username,omitempty"`
	Text            string         `json:"text"`
	Team            string         `json:"team,omitempty"`
	UserTeam        string         `json:"user_team,omitempty"`
	UserProfile     *userProfile   `json:"user_profile,omitempty"`
	BotProfile      *botProfile    `json:"bot_profile,omitempty"`
	Blocks          []block        `json:"blocks,omitempty"`
	ThreadTS        string         `json:"thread_ts,omitempty"`
	ParentUserID    string         `json:"parent_user_id,omitempty"`
	ReplyCount      int            `json:"reply_count,omitempty"`
	ReplyUsersCount int            `json:"reply_users_count,omitempty"`
	LatestReply     string         `json:"latest_reply,omitempty"`
	ReplyUsers      []string       `json:"reply_users,omitempty"`
	Replies         []reply        `json:"replies,omitempty"`
	Subscribed      bool           `json:"subscribed,omitempty"`
	Edited          *edited        `json:"edited,omitempty"`
	Reactions       []reaction     `json:"reactions,omitempty"`
	Files           []file         `json:"files,omitempty"`
	Upload          bool           `json:"upload,omitempty"`
	Attachments     []attachment   `json:"attachments,omitempty"`
	PinnedTo        []string       `json:"pinned_to,omitempty"`
	ItemType        string         `json:"item_type,omitempty"`
	Topic           string         `json:"topic,omitempty"`
	Purpose         string         `json:"purpose,omitempty"`
	Name            string         `json:"name,omitempty"`
	OldName         string         `json:"old_name,omitempty"`
	Inviter         string         `json:"inviter,omitempty"`
	Extra           map[string]any `json:"room,omitempty"`
	ClientMsgID     string         `json:"client_msg_id,omitempty"`
}

type userProfile struct {
	AvatarHash        string `json:"avatar_hash"`
	Image72           string `json:"image_72"`
	FirstName         string `json:"first_name"`
	RealName          string `json:"real_name"`
	DisplayName       string `json:"display_name"`
	Team              string `json:"team"`
	Name              string `json:"name"`
	IsRestricted      bool   `json:"is_restricted"`
	IsUltraRestricted bool   `json:"is_ultra_restricted"`
}

type botProfile struct {
	ID      string `json:"id"`
	AppID   string `json:"app_id"`
	Name    string `json:"name"`
	Deleted bool   `json:"deleted"`
	TeamID  string `json:"team_id"`
}

type reply struct {
	User string `json:"user"`
	TS   string `json:"ts"`
}

type edited struct {
	User string `json:"user"`
	TS   string `json:"ts"`
}

type reaction struct {
	Name  string   `json:"name"`
	Users []string `json:"users"`
	Count int      `json:"count"`
}

type file struct {
	ID                 string `json:"id"`
	Created            int64  `json:"created,omitempty"`
	Timestamp          int64  `json:"timestamp,omitempty"`
	Name               string `json:"name,omitempty"`
	Title              string `json:"title,omitempty"`
	Mimetype           string `json:"mimetype,omitempty"`
	Filetype           string `json:"filetype,omitempty"`
	User               string `json:"user,omitempty"`
	Mode               string `json:"mode"`
	Size               int64  `json:"size,omitempty"`
	URLPrivate         string `json:"url_private,omitempty"`
	URLPrivateDownload string `json:"url_private_download,omitempty"`
	Permalink          string `json:"permalink,omitempty"`
	OriginalW          int    `json:"original_w,omitempty"`
	OriginalH          int    `json:"original_h,omitempty"`
}

type attachment struct {
	Fallback  string `json:"fallback,omitempty"`
	Color     string `json:"color,omitempty"`
	Pretext   string `json:"pretext,omitempty"`
	Title     string `json:"title,omitempty"`
	TitleLink string `json:"title_link,omitempty"`
	Text      string `json:"text,omitempty"`
	Footer    string `json:"footer,omitempty"`
	ID        int    `json:"id"`
}

// block is a rich_text block: sections, lists, quotes and preformatted
// runs of elements.
type block struct {
	Type     string         `json:"type"`
	BlockID  string         `json:"block_id,omitempty"`
	Elements []blockElement `json:"elements,omitempty"`
}

type blockElement struct {
	Type     string         `json:"type"`
	Style    any            `json:"style,omitempty"`
	Indent   int            `json:"indent,omitempty"`
	Elements []blockElement `json:"elements,omitempty"`
	Text     string         `json:"text,omitempty"`
	UserID   string         `json:"user_id,omitempty"`
	Channel  string         `json:"channel_id,omitempty"`
	URL      string         `json:"url,omitempty"`
	Name     string         `json:"name,omitempty"`
	Unicode  string         `json:"unicode,omitempty"`
	Range    string         `json:"range,omitempty"`
}

type textStyle struct {
	Bold   bool `json:"bold,omitempty"`
	Italic bool `json:"italic,omitempty"`
	Strike bool `json:"strike,omitempty"`
	Code   bool `json:"code,omitempty"`
}
