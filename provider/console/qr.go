package console

import "github.com/skip2/go-qrcode"

// newQRSVG encodes s as a QR code (medium error correction, with its
// quiet zone) for an inline SVG.
func newQRSVG(s string) (qrSVG, error) {
	q, err := qrcode.New(s, qrcode.Medium)
	if err != nil {
		return qrSVG{}, err
	}
	bm := q.Bitmap()
	return qrSVG{Size: len(bm), Path: pathOf(bm)}, nil
}
