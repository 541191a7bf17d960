import ReachCore
import Testing

@Suite("masking the secrets of connection strings before they are printed")
struct ConnectionSecretsTests {
    func masked(_ text: String) -> String { Redaction.maskConnectionSecrets(text) }

    @Test("URL user info: the password after the colon")
    func userInfo() {
        #expect(masked("postgresql://reach:s3cret@db:5432/reach") == "postgresql://reach:***@db:5432/reach")
        #expect(masked("postgres://reach:s3cret@db/reach?sslmode=require") == "postgres://reach:***@db/reach?sslmode=require")
        #expect(masked("redis://:pw@127.0.0.1:6379/0") == "redis://:***@127.0.0.1:6379/0")
        #expect(masked("redis://user:pw@127.0.0.1:6379/0") == "redis://user:***@127.0.0.1:6379/0")
        // Unescaped '@', '/', '?' and '#' in a password are still masked (user info runs to the last '@').
        #expect(masked("postgresql://u:p@ss/w?rd#x@db/reach") == "postgresql://u:***@db/reach")
    }

    @Test("redis:// user info without a colon is the password (that is how reachd reads it)")
    func redisBarePassword() {
        #expect(masked("redis://hunter2@127.0.0.1:6379/0") == "redis://***@127.0.0.1:6379/0")
        #expect(masked("rediss://hunter2@cache.example:6380") == "rediss://***@cache.example:6380")
        // For PostgreSQL it is the user name, which stays readable.
        #expect(masked("postgresql://reach@127.0.0.1:5432/reach") == "postgresql://reach@127.0.0.1:5432/reach")
    }

    @Test("URL query parameters: password and sslpassword, anywhere in the query")
    func queryParameters() {
        #expect(masked("postgresql://u@h/db?password=x") == "postgresql://u@h/db?password=***")
        #expect(masked("postgresql://h/db?sslmode=require&password=x&application_name=reachd")
                == "postgresql://h/db?sslmode=require&password=***&application_name=reachd")
        #expect(masked("postgresql:///db?host=/tmp&sslpassword=k3y") == "postgresql:///db?host=/tmp&sslpassword=***")
        #expect(masked("redis://h?password=x") == "redis://h?password=***")
        #expect(masked("redis://127.0.0.1:6379/0?PASSWORD=x#frag") == "redis://127.0.0.1:6379/0?PASSWORD=***#frag")
    }

    @Test("keyword connection strings: plain and quoted values, spaces around '='")
    func keywords() {
        #expect(masked("host=db port=5432 user=reach password=s3cret dbname=reach")
                == "host=db port=5432 user=reach password=*** dbname=reach")
        #expect(masked("host=db password='a b\\'c' dbname=reach") == "host=db password=*** dbname=reach")
        #expect(masked("host = db password = s3cret") == "host = db password = ***")
        #expect(masked("dbname=reach sslpassword=k3y") == "dbname=reach sslpassword=***")
        #expect(masked("password=s3cret") == "password=***")
    }

    @Test("nothing else changes")
    func noSecrets() {
        for text in ["postgresql://reach@127.0.0.1:5432/reach", "redis://127.0.0.1:6379/0", "host=db dbname=reach user=reach", "", "embedded"] {
            #expect(masked(text) == text)
        }
        #expect(Redaction.maskURLPassword("postgresql://reach:s3cret@db/reach") == masked("postgresql://reach:s3cret@db/reach"))
    }
}

@Suite("masking personal numbers in free text: phones in every way they are written, ID and card numbers")
struct PersonalNumberMaskingTests {
    func masked(_ text: String) -> String { Redaction.maskText(text) }

    @Test("phones with hyphens or spaces between their groups keep the first three and the last four digits")
    func separatedPhones() {
        #expect(masked("call 138-1234-5678 now") == "call 138****5678 now")
        #expect(masked("+86 138 1234 5678") == "+86****5678")
        #expect(masked("to +86-138-1234-5678.") == "to +86****5678.")
        #expect(masked("13812345678") == "138****5678")
        #expect(masked("(+1 415 555 0100)") == "(+14****0100)")
    }

    @Test("dates, times, thousands, decimals, versions, addresses and ids stay as they are")
    func notPhones() {
        for text in ["at 2026-11-22 10:00:03", "2026-12-04T17:52:03+0000", "12 000 000 recipients", "1 000 000", "pi 3.14159265358",
                     "127.0.0.1:5432", "192.168.100.200", "v1.2.3", "u-1001", "order A-77 amount 129.5", "campaign c-20261122-01",
                     "bench-3-12345678", "4 500 skipped"] {
            #expect(masked(text) == text, "\(text)")
        }
    }

    @Test("a national ID number keeps its first 6 and last 4, with a digit or X last")
    func nationalIDs() {
        #expect(masked("id 11010519491231002X ok") == "id 110105********002X ok")
        #expect(masked("110105194912310021") == "110105********0021")
    }

    @Test("a bank card number (Luhn) keeps its last 4, in one run or in groups")
    func cards() {
        #expect(masked("card 4111111111111111") == "card ************1111")
        #expect(masked("4111 1111 1111 1111") == "************1111")
        #expect(masked("4111-1111-1111-1111") == "************1111")
        #expect(Redaction.luhnHolds("79927398713") && !Redaction.luhnHolds("79927398710"))
        // Sixteen digits that fail Luhn are not a card: left alone (they are not a phone either).
        #expect(masked("4111111111111112") == "4111111111111112")
    }
}
