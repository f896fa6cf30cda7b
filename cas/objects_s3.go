package cas

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3Objects is an ObjectStore in an S3-compatible bucket, under a prefix. The client is
// minio-go: one small module with path-style addressing, ranged gets and multipart built
// in (aws-sdk-go-v2 needs a dozen modules for the same).
type S3Objects struct {
	mc     *minio.Client
	bucket string
	prefix string
}

// S3Config says where the packs live. Endpoint and credentials come from the AWS SDK's
// standard variables when empty (ParseS3URL).
type S3Config struct {
	Endpoint  string // host:port, or a URL (http:// means no TLS)
	AccessKey string
	SecretKey string
	Region    string
	PathStyle bool   // bucket in the path, not the host name
	Bucket    string // the bucket, which must exist
	Prefix    string // where under it the packs go ("" or ending in /)
	CacheDir  string // local cache of packs read; "" for none
	CacheMax  int64  // bytes the cache may hold; 0: 1 GiB
	// OnError hears errors of background work that no call returns (coalescing).
	OnError func(msg string)
}

// ParseS3URL reads s3://BUCKET/PREFIX and the standard AWS variables (AWS_ENDPOINT_URL,
// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION; path-style addressing with
// AWS_S3_ADDRESSING_STYLE=path, the SDK's addressing_style setting).
func ParseS3URL(raw string) (S3Config, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "s3" || u.Host == "" {
		return S3Config{}, fmt.Errorf("packs %q: want s3://BUCKET/PREFIX", raw)
	}
	c := S3Config{
		Bucket: u.Host, Prefix: strings.Trim(u.Path, "/"),
		Endpoint: os.Getenv("AWS_ENDPOINT_URL"), AccessKey: os.Getenv("AWS_ACCESS_KEY_ID"),
		SecretKey: os.Getenv("AWS_SECRET_ACCESS_KEY"), Region: os.Getenv("AWS_REGION"),
		PathStyle: os.Getenv("AWS_S3_ADDRESSING_STYLE") == "path",
	}
	if c.Prefix != "" {
		c.Prefix += "/"
	}
	if c.Endpoint == "" {
		c.Endpoint = "https://s3.amazonaws.com"
	}
	return c, nil
}

// packContentType says what a pack is: zstd frames (and some raw chunks). Stores that
// compress what looks compressible (SeaweedFS gzips a whole object when its first 128 bytes
// shrink) leave it alone.
const packContentType = "application/vnd.swcli.pack+zstd"

// s3PartSize: objects above s3SinglePut are uploaded in parts of this size.
const s3PartSize = 16 << 20

// s3SinglePut: objects up to this size (an upload batch of a copy is at most 96 MiB) are
// put in one request.
const s3SinglePut = 128 << 20

// NewS3Objects connects to c's endpoint and checks that its bucket exists.
func NewS3Objects(ctx context.Context, c S3Config) (*S3Objects, error) {
	host, secure := c.Endpoint, true
	if u, err := url.Parse(c.Endpoint); err == nil && u.Host != "" {
		host, secure = u.Host, u.Scheme != "http"
	}
	lookup := minio.BucketLookupAuto
	if c.PathStyle {
		lookup = minio.BucketLookupPath
	}
	mc, err := minio.New(host, &minio.Options{
		Creds: credentials.NewStaticV4(c.AccessKey, c.SecretKey, ""), Secure: secure,
		Region: c.Region, BucketLookup: lookup,
	})
	if err != nil {
		return nil, fmt.Errorf("s3 %s: %w", c.Endpoint, err)
	}
	ok, err := mc.BucketExists(ctx, c.Bucket)
	if err != nil {
		return nil, fmt.Errorf("s3 bucket %s at %s: %w", c.Bucket, c.Endpoint, err)
	}
	if !ok {
		return nil, fmt.Errorf("s3 bucket %s at %s does not exist", c.Bucket, c.Endpoint)
	}
	return &S3Objects{mc: mc, bucket: c.Bucket, prefix: c.Prefix}, nil
}

// s3Err makes S3's "no such key" ErrNoObject.
func s3Err(name string, err error) error {
	if err == nil {
		return nil
	}
	if minio.ToErrorResponse(err).Code == "NoSuchKey" || minio.ToErrorResponse(errors.Unwrap(err)).Code == "NoSuchKey" {
		return fmt.Errorf("object %s: %w", name, ErrNoObject)
	}
	return err
}

func (o *S3Objects) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	// Up to s3SinglePut the object goes in one request, streamed; above it in parts.
	partSize := uint64(s3PartSize)
	if size <= s3SinglePut {
		partSize = s3SinglePut
	}
	_, err := o.mc.PutObject(ctx, o.bucket, o.prefix+name, r, size,
		minio.PutObjectOptions{PartSize: partSize, ContentType: packContentType,
			// Packs are named by their blake3 and every read re-hashes what it reads: a
			// SHA-256 of the body for the signature would only cost CPU (a fifth of a put).
			DisableContentSha256: true})
	return err
}

func (o *S3Objects) GetRange(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	opts := minio.GetObjectOptions{}
	if length >= 0 {
		if err := opts.SetRange(off, off+length-1); err != nil {
			return nil, err
		}
	} else if off > 0 {
		if err := opts.SetRange(off, 0); err != nil {
			return nil, err
		}
	}
	obj, err := o.mc.GetObject(ctx, o.bucket, o.prefix+name, opts)
	if err != nil {
		return nil, s3Err(name, err)
	}
	return &s3Reader{obj: obj, name: name}, nil
}

// s3Reader makes a missing object's error (which minio-go reports at the first read)
// ErrNoObject.
type s3Reader struct {
	obj  *minio.Object
	name string
}

func (r *s3Reader) Read(p []byte) (int, error) {
	n, err := r.obj.Read(p)
	if err != nil && err != io.EOF {
		err = s3Err(r.name, err)
	}
	return n, err
}

func (r *s3Reader) Close() error { return r.obj.Close() }

func (o *S3Objects) Stat(ctx context.Context, name string) (int64, error) {
	info, err := o.mc.StatObject(ctx, o.bucket, o.prefix+name, minio.StatObjectOptions{})
	if err != nil {
		return 0, s3Err(name, err)
	}
	return info.Size, nil
}

func (o *S3Objects) List(ctx context.Context, prefix string, fn func(name string, size int64) error) error {
	for obj := range o.mc.ListObjects(ctx, o.bucket, minio.ListObjectsOptions{Prefix: o.prefix + prefix, Recursive: true}) {
		if obj.Err != nil {
			return obj.Err
		}
		if err := fn(strings.TrimPrefix(obj.Key, o.prefix), obj.Size); err != nil {
			return err
		}
	}
	return nil
}

func (o *S3Objects) Delete(ctx context.Context, name string) error {
	return o.mc.RemoveObject(ctx, o.bucket, o.prefix+name, minio.RemoveObjectOptions{})
}
