package sdk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/plugins/proto"
)

// uploadChunk is the size of the chunks a file is uploaded in.
const uploadChunk = 256 << 10

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

// upload streams a file of size bytes (-1: unknown) to the host's media
// repository as user and returns its mxc URI.
func (m *Matrix) upload(ctx context.Context, user id.UserID, fileName, mimeType string, size int64, r io.Reader) (id.ContentURIString, error) {
	if max := m.env.MaxUploadBytes; max > 0 && size > max {
		return "", fmt.Errorf("%w (%d bytes > %d)", bridgev2.ErrMediaTooLarge, size, max)
	}
	stream, err := m.host.UploadMedia(ctx)
	if err != nil {
		return "", hostError("uploading media", err)
	}
	chunk := &proto.UploadMediaChunk{UserId: string(user), ContentType: mimeType, FileName: fileName, Size: size}
	buf := make([]byte, uploadChunk)
	for first := true; ; first = false {
		n, rerr := io.ReadFull(r, buf)
		if n > 0 || first {
			chunk.Data = buf[:n]
			if err := stream.Send(chunk); err != nil {
				if errors.Is(err, io.EOF) {
					// The host ended the call: its answer says why.
					_, err = stream.CloseAndRecv()
				}
				return "", hostError("uploading media", err)
			}
			chunk = &proto.UploadMediaChunk{}
		}
		if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
			break
		} else if rerr != nil {
			return "", rerr
		}
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return "", hostError("uploading media", err)
	}
	return id.ContentURIString(resp.ContentUri), nil
}

// download reads a file of the host's media repository into memory, or
// streams it into w when w is set (and then returns no bytes).
func (m *Matrix) download(ctx context.Context, uri id.ContentURIString, w io.Writer) ([]byte, error) {
	stream, err := m.host.DownloadMedia(ctx, &proto.DownloadMediaRequest{ContentUri: string(uri)})
	if err != nil {
		return nil, hostError("downloading "+string(uri), err)
	}
	var buf *bytes.Buffer
	if w == nil {
		buf = &bytes.Buffer{}
		w = buf
	}
	for first := true; ; first = false {
		c, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			if buf == nil {
				return nil, nil
			}
			return buf.Bytes(), nil
		} else if err != nil {
			return nil, hostError("downloading "+string(uri), err)
		}
		if first && buf != nil && c.Size > 0 {
			buf.Grow(int(min(c.Size, 64<<20)))
		}
		if _, err := w.Write(c.Data); err != nil {
			return nil, err
		}
	}
}
