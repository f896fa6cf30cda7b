package ops

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/swcli/swcli/internal/fsutil"
	"github.com/swcli/swcli/ledger"
	"github.com/swcli/swcli/ops/api"
	"github.com/swcli/swcli/ops/client"
	"github.com/swcli/swcli/ops/formats"
)

// Signed checkpoints (C2SP tlog-checkpoint): the ledger's Merkle tree head, signed with the
// instance's ed25519 key as a signed note (golang.org/x/mod/sumdb/note):
//
//	<origin>
//	<size>
//	<base64 root hash>
//
//	— <key name> <base64 signature>
//
// The key is made on first use, kept in ROOT/ledger.key (0600), and recorded in the
// ledger (ledger.key, with the key it replaces on rotation), so the history says which key
// signed when. Clients pin the verifier key at login and refuse a checkpoint that does not
// extend the last one they saw (CheckCheckpoint).

// LedgerKeyFile is the signer key's file in a root (a ledger on PostgreSQL keeps it in the
// database instead, under sharedKeyName, so that its replicas sign alike).
const LedgerKeyFile = "ledger.key"

const sharedKeyName = "checkpoint-key"

// Checkpoint is a parsed, verified checkpoint.
type Checkpoint struct {
	Origin string
	Size   uint64
	Hash   tlog.Hash
	Note   string // the signed note, as received
}

func (c Checkpoint) String() string {
	return fmt.Sprintf("%d events, root %s", c.Size, c.Hash)
}

// ledgerOrigin is the checkpoints' origin line and the key's name.
func ledgerOrigin(in *Instance) string {
	name := in.Name
	if name == "" {
		name = "local"
	}
	return "swcli/" + name
}

// ledgerKey returns the instance's signer and verifier key, making (and recording) them on
// first use.
func ledgerKey(ctx context.Context, in *Instance) (note.Signer, string, error) {
	if in.Ledger.Shared() {
		// Replicas sign with one key: it lives in their shared database, not in a root.
		var made string
		v, err := in.Ledger.SecretOnce(ctx, sharedKeyName, func() (string, error) {
			skey, vkey, err := note.GenerateKey(rand.Reader, ledgerOrigin(in))
			made = skey + "\n" + vkey
			return made, err
		})
		if err != nil {
			return nil, "", err
		}
		skey, vkey, _ := strings.Cut(v, "\n")
		if v == made {
			if _, err := in.appendLedger(ctx, ledger.KeyData{Key: vkey}); err != nil {
				return nil, "", err
			}
		}
		signer, err := note.NewSigner(skey)
		return signer, vkey, err
	}
	path := filepath.Join(in.Root, LedgerKeyFile)
	b, err := formats.ReadNoFollow(path)
	if errors.Is(err, os.ErrNotExist) {
		skey, vkey, err := note.GenerateKey(rand.Reader, ledgerOrigin(in))
		if err != nil {
			return nil, "", err
		}
		if err := writeKeyFile(path, skey, vkey, false); err != nil {
			if errors.Is(err, os.ErrExist) { // another process made it first
				return ledgerKey(ctx, in)
			}
			return nil, "", err
		}
		if _, err := in.appendLedger(ctx, ledger.KeyData{Key: vkey}); err != nil {
			return nil, "", err
		}
		b = []byte(skey + "\n" + vkey + "\n")
	} else if err != nil {
		return nil, "", err
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, "", err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, "", Errorf(KindUsage, "chmod 600 "+path, "%s may be read by other users (mode %04o): its key signs the ledger", path, fi.Mode().Perm())
	}
	skey, vkey, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	signer, err := note.NewSigner(strings.TrimSpace(skey))
	if err != nil {
		return nil, "", Errorf(KindCorrupt, "", "%s: %v", path, err)
	}
	return signer, strings.TrimSpace(vkey), nil
}

func writeKeyFile(path, skey, vkey string, replace bool) error {
	data := []byte(skey + "\n" + vkey + "\n")
	if replace {
		return fsutil.WriteFileAtomic(path, data, 0o600)
	}
	// The first key: made only if no other process made one first (O_EXCL).
	return fsutil.CreateSynced(path, data, 0o600)
}

func (in *Instance) appendLedger(ctx context.Context, d ledger.KeyData) (ledger.Event, error) {
	return in.Append(ctx, ledger.LedgerKeyed, "", "", "", d)
}

// LedgerKey returns the verifier key of the instance's checkpoints (made on first use).
func LedgerKey(ctx context.Context, in *Instance) (string, error) {
	_, vkey, err := ledgerKey(ctx, in)
	return vkey, err
}

// RotateLedgerKey replaces the checkpoint key with a new one, recorded in the ledger with
// the key it replaces; it returns both verifier keys.
func RotateLedgerKey(ctx context.Context, in *Instance) (old, new string, err error) {
	if _, old, err = ledgerKey(ctx, in); err != nil {
		return "", "", err
	}
	skey, vkey, err := note.GenerateKey(rand.Reader, ledgerOrigin(in))
	if err != nil {
		return "", "", err
	}
	if _, err := in.appendLedger(ctx, ledger.KeyData{Key: vkey, Previous: old}); err != nil {
		return "", "", err
	}
	if in.Ledger.Shared() {
		err = in.Ledger.SetSecret(ctx, sharedKeyName, skey+"\n"+vkey)
	} else {
		err = writeKeyFile(filepath.Join(in.Root, LedgerKeyFile), skey, vkey, true)
	}
	if err != nil {
		return "", "", err
	}
	return old, vkey, nil
}

// SignedCheckpoint returns the current checkpoint of the instance's ledger, signed.
func SignedCheckpoint(ctx context.Context, in *Instance) ([]byte, error) {
	msg, _, _, err := signedHead(ctx, in)
	return msg, err
}

// CheckpointAndKey returns the signed checkpoint and the key that verifies it.
func CheckpointAndKey(ctx context.Context, in *Instance) (msg []byte, key string, err error) {
	msg, key, _, err = signedHead(ctx, in)
	return msg, key, err
}

// signedHead signs the tree's head: the note, its verifier key, and the tree it names.
func signedHead(ctx context.Context, in *Instance) ([]byte, string, ledger.Tree, error) {
	signer, vkey, err := ledgerKey(ctx, in)
	if err != nil {
		return nil, "", ledger.Tree{}, err
	}
	t, err := in.Ledger.TreeHead(ctx)
	if err != nil {
		return nil, "", ledger.Tree{}, err
	}
	text := fmt.Sprintf("%s\n%d\n%s\n", ledgerOrigin(in), t.Size, base64.StdEncoding.EncodeToString(t.Hash[:]))
	msg, err := note.Sign(&note.Note{Text: text}, signer)
	return msg, vkey, t, err
}

// LedgerProof is what 'swcli ledger prove' prints and the console serves: today's signed
// checkpoint, the key that verifies it, and one proof against it, all a verifier needs
// (scripts/verify-ledger-proof.py). Fields in JSON's key order.
type LedgerProof struct {
	Checkpoint  string       `json:"checkpoint"`
	Consistency *Consistency `json:"consistency,omitempty"`
	Inclusion   *Inclusion   `json:"inclusion,omitempty"`
	Key         string       `json:"key"`
	OldRoot     string       `json:"old_root,omitempty"` // with Consistency: the tree of From events' root
}

// ProveLedger proves, against today's checkpoint, that event seq is in the log (seq > 0),
// or else that the log of from events is a prefix of today's.
func ProveLedger(ctx context.Context, in *Instance, seq, from uint64) (*LedgerProof, error) {
	msg, key, t, err := signedHead(ctx, in)
	if err != nil {
		return nil, err
	}
	out := &LedgerProof{Checkpoint: string(msg), Key: key}
	if seq != 0 {
		out.Inclusion, err = ProveInclusion(ctx, in, seq, t.Size)
		return out, err
	}
	if out.Consistency, err = ProveConsistency(ctx, in, from, t.Size); err != nil {
		return nil, err
	}
	old, err := in.Ledger.TreeHashAt(ctx, from)
	if err != nil {
		return nil, LedgerErr(err)
	}
	out.OldRoot = base64.StdEncoding.EncodeToString(old[:])
	return out, nil
}

// OpenCheckpoint verifies a signed checkpoint with the verifier key vkey and parses it.
func OpenCheckpoint(msg []byte, vkey string) (Checkpoint, error) {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return Checkpoint{}, Errorf(KindUsage, "", "ledger key %q: %v", vkey, err)
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		return Checkpoint{}, &Error{Kind: KindCorrupt, Err: fmt.Errorf("the checkpoint's signature does not verify with the pinned key %s: %v", v.Name(), err),
			Hint: "the server signs with another key: if its admin rotated it, check the new key with them and pin it with 'swcli instance checkpoints ALIAS --trust KEY'"}
	}
	c, err := parseCheckpoint(n.Text)
	c.Note = string(msg)
	return c, err
}

// Consistency is the proof GET /api/v1/ledger/consistency answers (api.Consistency).
type Consistency = api.Consistency

// Inclusion is a proof that event Seq is in the tree of Size events.
type Inclusion struct {
	Seq   uint64   `json:"seq"`
	Size  uint64   `json:"size"`
	Line  string   `json:"line,omitempty"` // the event's export line (the record)
	Proof []string `json:"proof"`
}

func b64s(hs []tlog.Hash) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = base64.StdEncoding.EncodeToString(h[:])
	}
	return out
}

func unb64s(ss []string) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(ss))
	for i, s := range ss {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil || len(b) != tlog.HashSize {
			return nil, fmt.Errorf("proof hash %d is not a hash", i)
		}
		copy(out[i][:], b)
	}
	return out, nil
}

// ProveConsistency proves that the instance's tree of from events is a prefix of its
// tree of to events.
func ProveConsistency(ctx context.Context, in *Instance, from, to uint64) (*Consistency, error) {
	p, err := in.Ledger.ProveConsistency(ctx, from, to)
	if err != nil {
		return nil, LedgerErr(err)
	}
	return &Consistency{From: from, To: to, Proof: b64s(p)}, nil
}

// ProveInclusion proves that event seq is in the tree of size events.
func ProveInclusion(ctx context.Context, in *Instance, seq, size uint64) (*Inclusion, error) {
	p, err := in.Ledger.ProveInclusion(ctx, seq, size)
	if err != nil {
		return nil, LedgerErr(err)
	}
	e, err := in.Ledger.Event(seq)
	if err != nil {
		return nil, LedgerErr(err)
	}
	return &Inclusion{Seq: seq, Size: size, Line: string(e.ExportLine()), Proof: b64s(p)}, nil
}

// CheckExtends checks that checkpoint next extends prev (the last one a client saw) by
// the proof: the same tree when the sizes are equal, a consistent one when it grew. A
// server that rewrote, dropped or forked its history fails here, with both named.
func CheckExtends(prev, next Checkpoint, proof *Consistency) error {
	fork := func(why string) error {
		return &Error{Kind: KindCorrupt, Err: fmt.Errorf("the server's history does not extend what it showed before (%s): before %s; now %s", why, prev, next),
			Hint: "its ledger was rewritten or forked: keep both checkpoints ('swcli instance checkpoints ALIAS') and tell its admin and auditors"}
	}
	switch {
	case prev.Size == 0:
		return nil
	case next.Size < prev.Size:
		return fork("it is shorter")
	case next.Size == prev.Size:
		if next.Hash != prev.Hash {
			return fork("the same size, another root")
		}
		return nil
	}
	if proof == nil || proof.From != prev.Size || proof.To != next.Size {
		return fork("no consistency proof between them")
	}
	hs, err := unb64s(proof.Proof)
	if err != nil {
		return fork(err.Error())
	}
	if err := tlog.CheckTree(hs, int64(next.Size), next.Hash, int64(prev.Size), prev.Hash); err != nil {
		return fork("the consistency proof fails")
	}
	return nil
}

// CheckInclusion checks an inclusion proof against a checkpoint.
func CheckInclusion(c Checkpoint, p *Inclusion) error {
	hs, err := unb64s(p.Proof)
	if err != nil {
		return err
	}
	if p.Size != c.Size {
		return fmt.Errorf("the proof is for %d events, the checkpoint has %d", p.Size, c.Size)
	}
	return tlog.CheckRecord(hs, int64(c.Size), c.Hash, int64(p.Seq-1), tlog.RecordHash([]byte(p.Line)))
}

// ParseCheckpointText reads a checkpoint's size and root without its signature (one kept
// in a client's config, checked when it was received).
func ParseCheckpointText(msg string) (Checkpoint, error) {
	c, err := parseCheckpoint(msg)
	c.Note = msg
	return c, err
}

// parseCheckpoint reads a checkpoint's text: origin, size, base64 root.
func parseCheckpoint(text string) (Checkpoint, error) {
	lines := strings.SplitN(text, "\n", 4)
	if len(lines) < 4 {
		return Checkpoint{}, Errorf(KindCorrupt, "", "a checkpoint of %d lines", len(lines))
	}
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil {
		return Checkpoint{}, Errorf(KindCorrupt, "", "checkpoint size %q: %v", lines[1], err)
	}
	raw, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(raw) != tlog.HashSize {
		return Checkpoint{}, Errorf(KindCorrupt, "", "checkpoint root %q is not a hash", lines[2])
	}
	c := Checkpoint{Origin: lines[0], Size: size}
	copy(c.Hash[:], raw)
	return c, nil
}

// FollowLedger is what a client does at each contact: it fetches the server's checkpoint,
// verifies it with the pinned key (pinning the server's key on first contact, trust on
// first use), and checks that it extends the last checkpoint seen. It returns the key and
// the checkpoint to remember; pinned is "" only at first contact.
func FollowLedger(ctx context.Context, c *client.Remote, pinned, last string) (key string, cp Checkpoint, err error) {
	key = pinned
	if key == "" {
		if key, err = c.LedgerKey(ctx); err != nil || key == "" {
			return "", Checkpoint{}, err // a server that publishes no checkpoints (older swcli)
		}
	}
	msg, err := c.Checkpoint(ctx)
	if err != nil {
		return "", Checkpoint{}, err
	}
	cp, err = OpenCheckpoint(msg, key)
	if err != nil {
		return "", Checkpoint{}, fmt.Errorf("%s: %w", c.Name(), err)
	}
	if last == "" {
		return key, cp, nil
	}
	prev, err := ParseCheckpointText(last)
	if err != nil {
		return "", Checkpoint{}, err
	}
	var proof *Consistency
	if prev.Size > 0 && cp.Size > prev.Size {
		if proof, err = c.Consistency(ctx, prev.Size, cp.Size); err != nil {
			return "", Checkpoint{}, err
		}
	}
	if err := CheckExtends(prev, cp, proof); err != nil {
		return "", Checkpoint{}, fmt.Errorf("%s: %w", c.Name(), err)
	}
	return key, cp, nil
}

// Witnesses. A witness (another instance, an auditor) follows a server's checkpoints as a
// client does, and cosigns each one that extends what it saw before: it adds its own
// signature to the server's signed note and sends it back. The server keeps each witness's
// latest cosigned checkpoint; a client that trusts witness keys asks for them and takes a
// checkpoint only if at least N witnesses vouch for a history it extends: a fork shown to
// one client and not to the witnesses is refused.

// CosignaturesFile holds, in a server's root, each witness's latest cosigned checkpoint.
const CosignaturesFile = "cosignatures.json"

// MaxWitnesses bounds the cosignatures a server keeps.
const MaxWitnesses = 64

// Cosign signs checkpoint cp (already verified against its server) with the instance's own
// key, as a witness: the server's signature and this one in one note.
func Cosign(ctx context.Context, in *Instance, cp Checkpoint, serverKey string) ([]byte, error) {
	signer, _, err := ledgerKey(ctx, in)
	if err != nil {
		return nil, err
	}
	v, err := note.NewVerifier(serverKey)
	if err != nil {
		return nil, err
	}
	n, err := note.Open([]byte(cp.Note), note.VerifierList(v))
	if err != nil {
		return nil, err
	}
	return note.Sign(n, signer)
}

// TakeCosignature checks a cosigned note a witness sent: the server's own signature, on a
// checkpoint of its own tree; it returns the witness's signature name (the key's name and
// hash) to file it under.
func TakeCosignature(ctx context.Context, in *Instance, msg []byte) (string, error) {
	_, vkey, err := ledgerKey(ctx, in)
	if err != nil {
		return "", err
	}
	cp, err := OpenCheckpoint(msg, vkey)
	if err != nil {
		return "", Errorf(KindInvalid, "", "cosignature: %v", err)
	}
	root, err := in.Ledger.TreeHashAt(ctx, cp.Size)
	if err != nil || root != cp.Hash {
		return "", Errorf(KindInvalid, "", "cosignature: not a checkpoint of this ledger (%s)", cp)
	}
	v, _ := note.NewVerifier(vkey)
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		return "", Errorf(KindInvalid, "", "cosignature: %v", err)
	}
	if len(n.UnverifiedSigs) != 1 {
		return "", Errorf(KindInvalid, "send the server's note with your signature added", "cosignature: %d signatures besides the server's, want 1", len(n.UnverifiedSigs))
	}
	s := n.UnverifiedSigs[0]
	if CheckText(s.Name) != nil || len(s.Name) > 128 {
		return "", Errorf(KindInvalid, "", "cosignature: a witness name %q", Truncate(s.Name))
	}
	return fmt.Sprintf("%s+%08x", s.Name, s.Hash), nil
}

// CheckWitnesses checks that at least min of the witnesses (verifier keys) have cosigned a
// checkpoint of serverKey's that cp extends (or equals), with the cosigned notes the server
// keeps; it returns how many vouch.
func CheckWitnesses(ctx context.Context, c *client.Remote, serverKey string, cp Checkpoint, witnesses []string, min int) (int, error) {
	var out struct {
		Cosigned []string `json:"cosigned"`
	}
	if err := c.GetJSON(ctx, api.RouteCosignatures.URL(), &out); err != nil {
		return 0, err
	}
	sv, err := note.NewVerifier(serverKey)
	if err != nil {
		return 0, err
	}
	vouch := 0
	for _, wk := range witnesses {
		wv, err := note.NewVerifier(wk)
		if err != nil {
			return 0, Errorf(KindUsage, "", "witness key %q: %v", wk, err)
		}
		for _, msg := range out.Cosigned {
			n, err := note.Open([]byte(msg), note.VerifierList(sv, wv))
			if err != nil || len(n.Sigs) != 2 {
				continue
			}
			wcp, err := OpenCheckpoint([]byte(msg), serverKey)
			if err != nil || wcp.Size > cp.Size {
				continue
			}
			var proof *Consistency
			if wcp.Size < cp.Size {
				if proof, err = c.Consistency(ctx, wcp.Size, cp.Size); err != nil {
					return vouch, err
				}
			}
			if CheckExtends(wcp, cp, proof) == nil {
				vouch++
				break
			}
		}
	}
	if vouch < min {
		return vouch, &Error{Kind: KindCorrupt, Err: fmt.Errorf("%s: %d of the %d witnesses you trust vouch for the history it shows (%s); you require %d", c.Name(), vouch, len(witnesses), cp, min),
			Hint: "the server may show you a history the witnesses have not seen: ask them to cosign ('swcli ledger cosign ALIAS'), or tell its admin"}
	}
	return vouch, nil
}
