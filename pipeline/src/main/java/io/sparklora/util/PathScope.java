package io.sparklora.util;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.Path;

import java.io.IOException;
import java.nio.file.FileSystemLoopException;
import java.nio.file.FileVisitOption;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.EnumSet;
import java.util.regex.Pattern;

/**
 * Where the relative paths written in a file (a dataset manifest, a pipeline config) may lead: inside the directory
 * they resolve against, unless the file says otherwise.
 *
 * <ul>
 *   <li>An absolute path ({@code /data/x}) or a URI with a scheme ({@code hdfs://nn/x}, {@code s3a://bucket/x},
 *       {@code file:/x}) is the writer's explicit choice and is taken as written.</li>
 *   <li>A relative path must stay inside the base directory: a {@code ..} segment that climbs above it is refused, and
 *       so is any {@code ..} in a glob (its alternatives, {@code {a,..}}, could climb). On the local file system a
 *       relative path must also stay inside once symbolic links are followed: the path itself and, for a directory or
 *       a glob, every file and folder it reaches (hidden ones, whose names start with '.' or '_', are not read and not
 *       checked).</li>
 *   <li>{@code allow_outside: true} in the file lifts both checks for its relative paths.</li>
 * </ul>
 *
 * Errors name the file, the key and the path as written (any URI user-info redacted).
 */
public final class PathScope {
    /** The key that lets a file's relative paths lead outside its base directory. */
    public static final String ALLOW_OUTSIDE = "allow_outside";

    private static final Pattern EXPLICIT = Pattern.compile("^([A-Za-z][A-Za-z0-9+.-]*:)?/.*", Pattern.DOTALL);
    private static final Pattern SCHEME_PREFIX = Pattern.compile("^[A-Za-z][A-Za-z0-9+.-]*:");
    private static final Pattern GLOB = Pattern.compile("[*?\\[{]");

    /** A path written in a file leads outside where the file's relative paths may go. */
    public static final class EscapeException extends IOException {
        public EscapeException(String message) {
            super(message);
        }
    }

    private final Path base;
    private final String file;
    private final String baseName;
    private final boolean allowOutside;
    private final Configuration conf;

    /**
     * @param base the directory relative paths resolve against (fully qualified)
     * @param file how error messages name the file the paths are written in ({@code dataset manifest file:/x/m.yaml})
     * @param baseName how error messages name the base ({@code the manifest's directory})
     * @param allowOutside the file's {@code allow_outside} setting
     * @param conf for listing the matches of a glob on the local file system
     */
    public PathScope(Path base, String file, String baseName, boolean allowOutside, Configuration conf) {
        this.base = base;
        this.file = file;
        this.baseName = baseName;
        this.allowOutside = allowOutside;
        this.conf = conf;
    }

    /** Whether {@code raw} is an absolute path or a URI with an absolute path (taken as written, never confined). */
    public static boolean explicit(String raw) {
        return EXPLICIT.matcher(raw).matches();
    }

    /** Whether {@code raw} is a relative path without a scheme whose '..' segments never climb above where it starts. */
    public static boolean staysBelow(String raw) {
        return raw != null && !raw.isEmpty() && !explicit(raw) && !SCHEME_PREFIX.matcher(raw).find() && !climbs(raw, false);
    }

    /** Checks {@code raw} (written under {@code key}) and resolves it against the base, as Hadoop's {@code Path(base, raw)} does. */
    public String resolve(String key, String raw) throws IOException {
        check(key, raw);
        return new Path(base, raw).toString();
    }

    /** Checks {@code raw}, written under {@code key}, against the rules in the class comment. */
    public void check(String key, String raw) throws IOException {
        if (allowOutside || raw == null || explicit(raw)) return;
        String rel = SCHEME_PREFIX.matcher(raw).replaceFirst("");
        boolean glob = GLOB.matcher(rel).find();
        if (climbs(rel, glob)) {
            throw new EscapeException(prefix(key, raw) + (glob ? "is a glob with a '..' in it, which may lead outside " : "leads outside ")
                    + baseName + " " + Redaction.userInfo(base.toString()) + hint());
        }
        if (!"file".equals(base.toUri().getScheme())) return;   // symbolic links are followed on local disks only
        java.nio.file.Path realBase = java.nio.file.Path.of(base.toUri()).toRealPath();
        Path resolved = new Path(base, raw);
        if (glob) {
            FileStatus[] matches = resolved.getFileSystem(conf).globStatus(resolved);
            if (matches == null) return;
            for (FileStatus m : matches) checkTree(key, raw, java.nio.file.Path.of(m.getPath().toUri()), realBase);
        } else {
            checkTree(key, raw, java.nio.file.Path.of(resolved.toUri()), realBase);
        }
    }

    /** Whether the relative path's {@code ..} segments climb above its start (in a glob: whether it has one at all). */
    static boolean climbs(String rel, boolean glob) {
        int depth = 0;
        for (String part : rel.split(glob ? "[/{},]" : "/")) {
            if (part.isEmpty() || part.equals(".")) continue;
            if (part.equals("..")) {
                if (glob || --depth < 0) return true;
            } else {
                depth++;
            }
        }
        return false;
    }

    private void checkTree(String key, String raw, java.nio.file.Path start, java.nio.file.Path realBase) throws IOException {
        java.nio.file.Path real = real(start, 0);
        if (!real.startsWith(realBase)) throw linkEscape(key, raw, start, real);
        if (!Files.isDirectory(start)) return;
        IOException[] found = {null};
        Files.walkFileTree(start, EnumSet.of(FileVisitOption.FOLLOW_LINKS), Integer.MAX_VALUE, new SimpleFileVisitor<>() {
            @Override
            public FileVisitResult preVisitDirectory(java.nio.file.Path dir, BasicFileAttributes attrs) throws IOException {
                if (!dir.equals(start) && hidden(dir)) return FileVisitResult.SKIP_SUBTREE;
                return visit(dir);
            }

            @Override
            public FileVisitResult visitFile(java.nio.file.Path f, BasicFileAttributes attrs) throws IOException {
                return hidden(f) ? FileVisitResult.CONTINUE : visit(f);
            }

            @Override
            public FileVisitResult visitFileFailed(java.nio.file.Path f, IOException e) {
                if (hidden(f)) return FileVisitResult.CONTINUE;
                found[0] = e instanceof FileSystemLoopException
                        ? new EscapeException(prefix(key, raw) + "reaches a loop of symbolic links at " + f)
                        : new IOException(prefix(key, raw) + "cannot read " + f + ": " + e.getMessage(), e);
                return FileVisitResult.TERMINATE;
            }

            private FileVisitResult visit(java.nio.file.Path p) throws IOException {
                java.nio.file.Path r = real(p, 0);
                if (r.startsWith(realBase)) return FileVisitResult.CONTINUE;
                found[0] = linkEscape(key, raw, p, r);
                return FileVisitResult.TERMINATE;
            }
        });
        if (found[0] != null) throw found[0];
    }

    private static boolean hidden(java.nio.file.Path p) {
        String n = p.getFileName() == null ? "" : p.getFileName().toString();
        return n.startsWith(".") || n.startsWith("_");
    }

    /** Where {@code p} really is, symbolic links followed; for a path that does not exist, its nearest existing ancestor's real path plus the rest. */
    static java.nio.file.Path real(java.nio.file.Path p, int hops) throws IOException {
        java.nio.file.Path abs = p.toAbsolutePath();
        try {
            return abs.toRealPath();
        } catch (NoSuchFileException e) {
            if (hops > 40) throw new IOException("too many levels of symbolic links at " + p);
            java.nio.file.Path parent = abs.getParent();
            if (parent == null) return abs;
            if (Files.isSymbolicLink(abs)) return real(parent.resolve(Files.readSymbolicLink(abs)), hops + 1);   // a dangling link
            return real(parent, hops + 1).resolve(abs.getFileName()).normalize();
        }
    }

    private EscapeException linkEscape(String key, String raw, java.nio.file.Path at, java.nio.file.Path real) {
        return new EscapeException(prefix(key, raw) + "leads outside " + baseName + " " + Redaction.userInfo(base.toString())
                + " through a symbolic link: " + at + " is " + real + hint());
    }

    private String prefix(String key, String raw) {
        return Redaction.userInfo(file) + ": " + key + " '" + Redaction.userInfo(raw) + "' ";
    }

    private String hint() {
        return "; write an absolute path or a URI if that is meant, or set '" + ALLOW_OUTSIDE + ": true' in the file";
    }
}
