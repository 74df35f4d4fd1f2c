import java.io.BufferedReader;
import java.io.FileInputStream;
import java.io.InputStreamReader;
import java.util.ArrayList;
import java.util.List;

/**
 * Opens files on request, as an application under load would: each line "open N" on stdin opens
 * N files at once (each a fresh descriptor for /proc/self/status), closes them again and then
 * prints "opened N" or "failed after K: <error>"; end of input ends it.
 */
public class FdChurn {
    public static void main(String[] args) throws Exception {
        System.out.println("ready");
        System.out.flush();
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, "UTF-8"));
        String line;
        while ((line = in.readLine()) != null) {
            if (!line.startsWith("open ")) {
                continue;
            }
            int n = Integer.parseInt(line.substring(5).trim());
            List<FileInputStream> open = new ArrayList<>();
            String result;
            try {
                for (int i = 0; i < n; i++) {
                    open.add(new FileInputStream("/proc/self/status"));
                }
                result = "opened " + open.size();
            } catch (Exception e) {
                result = "failed after " + open.size() + ": " + e;
            } finally {
                for (FileInputStream f : open) {
                    f.close();
                }
            }
            // Said once they are closed again, so the test counts descriptors after the answer.
            System.out.println(result);
            System.out.flush();
        }
    }
}
