package io.sparklora.data;

import io.sparklora.storage.HadoopFiles;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

import java.io.FileNotFoundException;
import java.io.IOException;
import java.io.Serializable;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;

/**
 * One file of a dataset's sources, as listed on the driver.
 *
 * @param index position in the manifest's sorted file list (orders documents deterministically)
 * @param sourceIndex position of its source in the manifest
 * @param uri fully qualified file URI
 * @param label label index every document of the file has (a labelled_dir folder or a source's fixed
 *              label), or -1
 */
public record SourceFile(int index, int sourceIndex, String uri, int label) implements Serializable {

    /**
     * Every file of every text, jsonl and labelled_dir source (Spark sources are not listed here), in
     * manifest order and sorted by path within a source. Hidden files and
     * folders (names starting with '.' or '_', such as {@code _SUCCESS} or {@code .crc} files) are skipped.
     */
    public static List<SourceFile> list(Configuration conf, DatasetManifest manifest) throws IOException {
        List<SourceFile> files = new ArrayList<>();
        for (int s = 0; s < manifest.sources().size(); s++) {
            DatasetManifest.Source source = manifest.source(s);
            if (source.format().spark()) continue; // read as a DataFrame (spark.tokenize.TokenizeTables), not file by file
            Path root = new Path(source.uri());
            FileSystem fs = HadoopFiles.fs(root, conf);
            String what = "dataset manifest " + manifest.uri() + ": source '" + source.name() + "'";
            FileStatus status;
            try {
                status = fs.getFileStatus(root);
            } catch (FileNotFoundException e) {
                throw new FileNotFoundException(what + ": " + root + " does not exist");
            }
            int fixed = source.label() == null ? -1 : manifest.labelIndex(source.label());
            if (source.format() == DatasetManifest.Format.LABELLED_DIR) {
                if (!status.isDirectory()) throw new IOException(what + ": " + root + " is not a directory (labelled_dir)");
                for (FileStatus child : sortedChildren(fs, root)) {
                    if (!child.isDirectory()) {
                        throw new IOException(what + ": " + child.getPath() + " is not inside a label folder");
                    }
                    String labelName = child.getPath().getName();
                    int label = manifest.labelIndex(labelName);
                    if (label < 0) {
                        throw new IOException(what + ": folder " + child.getPath() + " names unknown label '" + labelName
                                + "' (labels: " + manifest.labels() + ")");
                    }
                    for (Path f : filesUnder(fs, child.getPath())) files.add(new SourceFile(files.size(), s, f.toString(), label));
                }
            } else if (status.isDirectory()) {
                if (source.sha256() != null) throw new IOException(what + ": sha256 is given but " + root + " is a directory");
                List<Path> under = filesUnder(fs, root);
                if (under.isEmpty()) throw new IOException(what + ": directory " + root + " holds no files");
                for (Path f : under) files.add(new SourceFile(files.size(), s, f.toString(), fixed));
            } else {
                files.add(new SourceFile(files.size(), s, status.getPath().toString(), fixed));
            }
        }
        return files;
    }

    private static List<Path> filesUnder(FileSystem fs, Path dir) throws IOException {
        List<Path> out = new ArrayList<>();
        for (FileStatus st : sortedChildren(fs, dir)) {
            if (st.isDirectory()) out.addAll(filesUnder(fs, st.getPath()));
            else out.add(st.getPath());
        }
        return out;
    }

    /** Non-hidden children sorted by name, so listings do not depend on the file system's order. */
    private static List<FileStatus> sortedChildren(FileSystem fs, Path dir) throws IOException {
        List<FileStatus> out = new ArrayList<>();
        for (FileStatus st : fs.listStatus(dir)) {
            String n = st.getPath().getName();
            if (!n.startsWith(".") && !n.startsWith("_")) out.add(st);
        }
        out.sort(Comparator.comparing(st -> st.getPath().getName()));
        return out;
    }
}
